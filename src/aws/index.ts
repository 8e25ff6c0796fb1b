/**
 * AWS-compatible APIs on the data plane, so the seeds' boto3 and AWS SDK code runs unchanged
 * against Kennel: SageMaker Runtime InvokeEndpoint (Kennel's own invocations route, answering
 * with SageMaker's headers and errors), Lambda Invoke, and AWS's error shapes. Requests are
 * signed with SigV4 using Kennel-issued AWS keys (verified in src/security).
 */
export { awsApiOf, sendAwsError } from './errors.js';
export { lambdaRoutes } from './lambda.js';
export { targetVariant, checkAccept, asyncRequestHeaders, INVOKED_VARIANT_HEADER, OUTPUT_LOCATION_HEADER, FAILURE_LOCATION_HEADER } from './sagemaker.js';
