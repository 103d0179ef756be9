/**
 * Lets a scenario module also run on its own (`node dist/loadtest/bench-<name>.js`): it prints its own
 * table; the process exits 0 when the run is done, or 1 with the error's stack.
 */
export function runAsScript(mod: NodeJS.Module, run: () => Promise<unknown>): void {
  if (require.main !== mod) return;
  run().then(
    () => process.exit(0),
    (err: unknown) => {
      process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
      process.exit(1);
    },
  );
}
