import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Errors, KennelError } from '../core/index.js';

/**
 * Secrets Kennel must be able to read back (AWS secret access keys: verifying a SigV4 signature
 * needs the secret itself, a hash will not do) are sealed with AES-256-GCM under the workspace
 * master key, KENNEL_HOME/secrets/master.key (32 random bytes, mode 0600, created on first use).
 * The database alone (a copy, a backup, a dump) then reveals no secret; whoever can read the
 * master key file as well can. The additional data binds each sealed value to its row (the key
 * id), so a sealed secret moved to another row does not open.
 */
const VERSION = 'v1';
const cached = new Map<string, Buffer>();

export const masterKeyPath = (home: string): string => join(home, 'secrets', 'master.key');

function masterKey(home: string): Buffer {
  const path = masterKeyPath(home);
  const known = cached.get(path);
  if (known) return known;
  mkdirSync(join(home, 'secrets'), { recursive: true, mode: 0o700 });
  try {
    writeFileSync(path, randomBytes(32), { flag: 'wx', mode: 0o600 });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
  if (statSync(path).mode & 0o077) {
    throw Errors.MasterKeyExposed(`The master key ${path} can be read by other users.`, `Make it private: chmod 600 ${path}`);
  }
  const key = readFileSync(path);
  if (key.length !== 32) throw Errors.MasterKeyInvalid(`The master key ${path} is not 32 bytes long.`, 'Restore it from a backup: without it, the stored AWS secret keys cannot be read (create new ones).');
  cached.set(path, key);
  return key;
}

/** "v1.<iv>.<tag>.<ciphertext>" (base64url), bound to `context`. */
export function seal(home: string, plaintext: string, context: string): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', masterKey(home), iv).setAAD(Buffer.from(context));
  const ct = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return [VERSION, iv, cipher.getAuthTag(), ct].map((p) => (typeof p === 'string' ? p : p.toString('base64url'))).join('.');
}

export function unseal(home: string, sealed: string, context: string): string {
  const [version, iv, tag, ct] = sealed.split('.');
  if (version !== VERSION || !iv || !tag || ct === undefined) throw Errors.SealedSecretInvalid('A sealed secret is damaged.');
  try {
    const decipher = createDecipheriv('aes-256-gcm', masterKey(home), Buffer.from(iv, 'base64url')).setAAD(Buffer.from(context)).setAuthTag(Buffer.from(tag, 'base64url'));
    return Buffer.concat([decipher.update(Buffer.from(ct, 'base64url')), decipher.final()]).toString('utf8');
  } catch {
    throw Errors.SealedSecretInvalid('A stored secret cannot be decrypted with this workspace\'s master key.', `Was ${masterKeyPath(home)} replaced? Restore it, or create new AWS keys.`);
  }
}
