import { open, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import type { DecisionLogSink } from './decision-log-sink';

export interface FileSinkOptions {
  path: string;
  /** Rotate before the file would grow past this. */
  maxBytes: number;
  /** Rotated files kept: path.1 (newest) … path.N; older ones are deleted. */
  maxFiles: number;
}

/**
 * An append-only file with size-based rotation. The hash chain runs across rotations: the first line of a
 * new file links to the last line of the one rotated out (verify them in order).
 */
export class FileSink implements DecisionLogSink {
  readonly name = 'file';
  private fh: FileHandle | null = null;
  private size = 0;

  constructor(private readonly options: FileSinkOptions) {}

  async send(lines: readonly string[]): Promise<void> {
    const text = `${lines.join('\n')}\n`;
    const bytes = Buffer.byteLength(text);
    if (!this.fh) await this.openFile();
    if (this.size > 0 && this.size + bytes > this.options.maxBytes) await this.rotate();
    await (this.fh as FileHandle).appendFile(text);
    await (this.fh as FileHandle).datasync();
    this.size += bytes;
  }

  async close(): Promise<void> {
    await this.fh?.close();
    this.fh = null;
  }

  private async openFile(): Promise<void> {
    this.fh = await open(this.options.path, 'a', 0o600);
    this.size = (await stat(this.options.path)).size;
  }

  private async rotate(): Promise<void> {
    await this.close();
    const { path, maxFiles } = this.options;
    await rm(`${path}.${maxFiles}`, { force: true });
    for (let i = maxFiles - 1; i >= 1; i--) await rename(`${path}.${i}`, `${path}.${i + 1}`).catch(() => undefined);
    await rename(path, `${path}.1`);
    await this.openFile();
  }
}
