import assert from 'node:assert/strict';

/**
 * The forms a secret can take in output: as is, JSON- and URL-escaped, base64 (standard and url),
 * hex, and its first and second halves (a truncated or wrapped print). Case-insensitive, because hex
 * and some encoders change case.
 */
export function secretForms(secret: string): string[] {
  const bytes = Buffer.from(secret, 'utf8');
  const half = Math.floor(secret.length / 2);
  const forms = [
    secret,
    JSON.stringify(secret).slice(1, -1),
    encodeURIComponent(secret),
    bytes.toString('base64').replace(/=+$/, ''),
    bytes.toString('base64url'),
    bytes.toString('hex'),
  ];
  // Halves only when long enough not to match ordinary words by chance.
  if (half >= 10) forms.push(secret.slice(0, half), secret.slice(half));
  return [...new Set(forms.map((form) => form.toLowerCase()))];
}

/** Fails when `text` holds `secret` in any of secretForms(); `where` names the output for the message. */
export function assertNoSecret(text: string, secret: string, where: string): void {
  const haystack = text.toLowerCase();
  for (const form of secretForms(secret)) {
    assert.ok(!haystack.includes(form), `the secret appeared in ${where} (as ${JSON.stringify(form)})`);
  }
}
