import { execFileSync } from 'node:child_process';

export interface BTFStruct {
  size: number;
  /** member name → byte offset */
  members: Record<string, number>;
}

/** Struct sizes and member byte offsets from a BPF object's BTF (what its kernel programs were compiled with). */
export function btfStructs(objectPath: string): Record<string, BTFStruct> {
  const raw = execFileSync('bpftool', ['btf', 'dump', 'file', objectPath, 'format', 'raw'], { encoding: 'utf8' });
  const out: Record<string, BTFStruct> = {};
  let current: BTFStruct | null = null;
  for (const line of raw.split('\n')) {
    const s = /^\[\d+\] STRUCT '(\w+)' size=(\d+)/.exec(line);
    if (s?.[1] && s[2]) {
      current = { size: Number(s[2]), members: {} };
      out[s[1]] = current;
      continue;
    }
    const m = /^\s+'(\w+)' type_id=\d+ bits_offset=(\d+)/.exec(line);
    if (m?.[1] && m[2] && current && line.startsWith('\t')) current.members[m[1]] = Number(m[2]) / 8;
    else if (!line.startsWith('\t')) current = null;
  }
  return out;
}
