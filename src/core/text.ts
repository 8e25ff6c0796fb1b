/** C0/C1 controls and the bidi controls that can reorder what a terminal shows (U+202E...). */
const UNSAFE = /[\p{Cc}\u061C\u200E\u200F\u202A-\u202E\u2066-\u2069]/gu;

/**
 * A name as it is safe to print: control and bidi characters as \u{XXXX}, so a file called
 * "photo\u202Egpj.exe" cannot pass for "photoexe.jpg" and a newline cannot forge an output line.
 */
export function printable(name: string): string {
  return name.replace(UNSAFE, (c) => `\\u{${c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}}`);
}

/** A file name from the file system: its text when it is valid UTF-8, else undefined. */
export function utf8Name(bytes: Buffer): string | undefined {
  const text = bytes.toString('utf8');
  return Buffer.from(text, 'utf8').equals(bytes) ? text : undefined;
}

/** A name that is not valid UTF-8, with each byte outside ASCII written as \xNN. */
export function escapeBytes(bytes: Buffer): string {
  return [...bytes].map((b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, '0')}`)).join('');
}
