"""The seeds' Lambda function and client calls, as written for AWS, run against Kennel.

Only the endpoint URL (KENNEL_URL) and the key pair (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)
are Kennel's. Prints one JSON document with what each call returned.
"""
import base64
import json
import os
import sys

import boto3
import botocore.exceptions

KENNEL_URL = os.environ["KENNEL_URL"]
runtime = boto3.Session().client("sagemaker-runtime", endpoint_url=KENNEL_URL, region_name="us-east-1")
lambda_client = boto3.client("lambda", endpoint_url=KENNEL_URL, region_name="us-west-2")
endpoint_Name = "dogs"


def lambda_handler(event, context):
    """The seeds' handler: the event goes to the endpoint as JSON, the answer back as the body."""
    response = runtime.invoke_endpoint(EndpointName=endpoint_Name, ContentType="application/json", Accept="application/json", Body=json.dumps(event))
    result = response["Body"].read().decode("utf-8")
    sss = json.loads(result)
    return {
        "statusCode": 200,
        "headers": {"Content-Type": "text/plain", "Access-Control-Allow-Origin": "*"},
        "type-result": str(type(result)),
        "body": json.dumps(sss),
    }


def main():
    with open(sys.argv[1], "rb") as f:
        jpeg = f.read()
    out = {}

    r = runtime.invoke_endpoint(EndpointName=endpoint_Name, ContentType="image/jpeg", Accept="application/json", Body=jpeg)
    out["jpeg"] = {"variant": r["InvokedProductionVariant"], "contentType": r["ContentType"], "answer": json.loads(r["Body"].read())}

    out["json"] = json.loads(lambda_handler({"image": base64.b64encode(jpeg).decode()}, None)["body"])

    r = lambda_client.invoke(FunctionName="classify", InvocationType="RequestResponse", Payload=json.dumps({"image": base64.b64encode(jpeg).decode()}))
    out["lambda"] = {"statusCode": r["StatusCode"], "functionError": r.get("FunctionError"), "payload": json.loads(r["Payload"].read())}

    try:
        runtime.invoke_endpoint(EndpointName=endpoint_Name, ContentType="image/jpeg", Body=b"not a photo")
    except runtime.exceptions.ModelError as e:
        out["modelError"] = {"code": e.response["Error"]["Code"], "originalStatusCode": e.response.get("OriginalStatusCode")}

    wrong = boto3.client("sagemaker-runtime", endpoint_url=KENNEL_URL, region_name="us-east-1", aws_access_key_id=os.environ["AWS_ACCESS_KEY_ID"], aws_secret_access_key="x" * 40)
    try:
        wrong.invoke_endpoint(EndpointName=endpoint_Name, ContentType="image/jpeg", Body=jpeg)
    except botocore.exceptions.ClientError as e:
        out["wrongSecret"] = {"code": e.response["Error"]["Code"], "status": e.response["ResponseMetadata"]["HTTPStatusCode"]}

    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
