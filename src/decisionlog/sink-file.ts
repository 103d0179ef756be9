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

  /** Lines are grouped into writes that fit the current file; a file is rotated before it would overflow. */
  async send(lines: readonly string[]): Promise<void> {
    if (!this.fh) await this.openFile();
    let chunk = '';
    let chunkBytes = 0;
    for (const line of lines) {
      const bytes = Buffer.byteLength(line) + 1;
      if (this.size + chunkBytes > 0 && this.size + chunkBytes + bytes > this.options.maxBytes) {
        await this.write(chunk, chunkBytes);
        if (this.size > 0) await this.rotate();
        chunk = '';
        chunkBytes = 0;
      }
      chunk += `${line}\n`;
      chunkBytes += bytes;
    }
    await this.write(chunk, chunkBytes);
  }

  private async write(text: string, bytes: number): Promise<void> {
    if (bytes === 0) return;
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
