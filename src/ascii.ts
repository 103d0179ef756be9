/** `s` with A-Z lowercased and every other character kept: no Unicode case folding (the Kelvin sign stays itself). */
export function lowerASCII(s: string): string {
  return s.replace(/[A-Z]+/g, (m) => m.toLowerCase());
}
