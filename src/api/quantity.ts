/**
 * Kubernetes resource quantities (`128Mi`, `1G`, `1.5Gi`, `1e9`, `500k`) as a number of bytes,
 * following k8s.io/apimachinery/pkg/api/resource: binary suffixes Ki..Ei, decimal k..E, or a
 * decimal exponent. Fractions of a byte round up, as the apiserver rounds quantities up.
 */
const BINARY: Record<string, number> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60 };
const DECIMAL: Record<string, number> = { '': 1, m: 1e-3, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18 };
const QUANTITY_RE = /^([+-]?(?:\d+(?:\.\d*)?|\.\d+))(Ki|Mi|Gi|Ti|Pi|Ei|[mkMGTPE]|[eE][+-]?\d+)?$/;

/** Parses a quantity to bytes; returns undefined when it is not a valid quantity. */
export function parseQuantity(input: string | number): number | undefined {
  if (typeof input === 'number') return Number.isFinite(input) ? Math.ceil(input) : undefined;
  const match = QUANTITY_RE.exec(input.trim());
  if (!match) return undefined;
  const value = Number(match[1]);
  const suffix = match[2] ?? '';
  let multiplier: number | undefined = BINARY[suffix] ?? DECIMAL[suffix];
  if (multiplier === undefined && /^[eE]/.test(suffix)) multiplier = 10 ** Number(suffix.slice(1));
  if (multiplier === undefined) return undefined;
  const bytes = Math.ceil(value * multiplier);
  return Number.isFinite(bytes) ? bytes : undefined;
}

/** Formats bytes for people: 16777216 -> "16Mi". */
export function formatBytes(bytes: number): string {
  for (const [suffix, size] of Object.entries(BINARY).reverse()) {
    if (bytes >= size && bytes % size === 0) return `${bytes / size}${suffix}`;
  }
  if (bytes >= 2 ** 20) return `${(bytes / 2 ** 20).toFixed(1)}Mi`;
  return `${bytes}`;
}
