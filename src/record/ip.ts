/**
 * Text forms of the 16-byte address fields, as `ss` and humans read them.
 *
 * @module
 */

/**
 * Formats an inet_diag address: family 2 → dotted quad of the first 4 bytes; family 10 →
 * RFC 5952 text (longest zero run compressed, IPv4-mapped addresses as `::ffff:a.b.c.d`).
 *
 * @example
 * ```ts
 * formatIp(2, new Uint8Array([127, 0, 0, 1, ...new Array(12).fill(0)])); // "127.0.0.1"
 * ```
 */
export function formatIp(family: number, b: Uint8Array): string {
  if (family === 2) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  if (family !== 10) return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  const words: number[] = [];
  for (let i = 0; i < 16; i += 2) words.push((b[i] << 8) | b[i + 1]);
  const mapped = words.slice(0, 5).every((w) => w === 0) && words[5] === 0xffff;
  if (mapped) return `::ffff:${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8;) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = words.map((w) => w.toString(16));
  if (bestStart < 0) return hex.join(":");
  const head = hex.slice(0, bestStart).join(":");
  const tail = hex.slice(bestStart + bestLen).join(":");
  return `${head}::${tail}`;
}
