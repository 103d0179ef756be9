import { readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';

/**
 * The committed envoy/*.yaml are working examples with default ports and paths. A value a test must change
 * is marked on its line with a trailing `# template: NAME`; renderEnvoyTemplate replaces that line's value
 * with vars[NAME]. Every marked name must be given and every given name must be used, so a renamed marker
 * fails loudly instead of leaving a default port in a test config.
 */
const MARKED = /^(\s*(?:- )?(?:[\w.@"'-]+:\s+)?)("[^"]*"|'[^']*'|[^\s#{]+)(\s+#\s*template:\s*([A-Z][A-Z0-9_]*)\b.*)$/;
/** The same for a one-key flow mapping: `key: { filename: VALUE } # template: NAME`. */
const MARKED_FLOW = /^(.*\{\s*[\w-]+:\s+)("[^"]*"|[^\s},]+)(\s*\}\s+#\s*template:\s*([A-Z][A-Z0-9_]*)\b.*)$/;

export type TemplateVars = Readonly<Record<string, string | number>>;

export function renderEnvoyTemplate(text: string, vars: TemplateVars): string {
  const used = new Set<string>();
  const lines = text.split('\n').map((line, i) => {
    if (!line.includes('template:') || /^\s*#/.test(line)) return line;
    const m = MARKED.exec(line) ?? MARKED_FLOW.exec(line);
    if (!m) throw new TypeError(`line ${i + 1}: "template:" marker on a line without a single value: ${line.trim()}`);
    const [, head, , tail, name] = m as unknown as [string, string, string, string, string];
    const value = vars[name];
    if (value === undefined) throw new TypeError(`template variable ${name} (line ${i + 1}) has no value`);
    used.add(name);
    return `${head}${typeof value === 'number' ? String(value) : JSON.stringify(value)}${tail}`;
  });
  const unused = Object.keys(vars).filter((k) => !used.has(k));
  if (unused.length > 0) throw new TypeError(`template variables never used: ${unused.join(', ')}`);
  return lines.join('\n');
}

/** Renders envoy/<file> into dir and returns the written path. */
export function renderEnvoyConfigFile(source: string, dir: string, vars: TemplateVars): string {
  const out = join(dir, basename(source));
  writeFileSync(out, renderEnvoyTemplate(readFileSync(source, 'utf8'), vars));
  return out;
}
