import { Busboy } from '@fastify/busboy';
import { VerdictError } from '../errors';
import { parseExactJSON } from './exact-json-parse';

export interface MultipartLimits {
  maxParsedBodyBytes: number;
  maxInputDepth: number;
  /** Parts are counted as parameters (ERR_REQUEST_TOO_MANY_PARAMS past it). */
  maxQueryParams: number;
}

/** A part's values sit at parsed_body.<name>[i]: three levels under the input root. */
const PART_DEPTH = 3;

/**
 * A multipart/form-data body as opa-envoy-plugin reads it (envoyauth/request.go `getParsedBody`, Go's
 * mime/multipart): parts by the boundary; parts without a form-data name skipped; a part whose content
 * type says JSON is decoded (invalid JSON is an error), every other part is its bytes as text; the result
 * maps each name to the list of its values. A content type without a boundary gives null (not an error).
 * Parsed by @fastify/busboy (streaming, bounded: part count, header size, part size).
 */
export async function parseMultipart(
  contentType: string,
  body: Buffer,
  limits: MultipartLimits,
): Promise<{ value: Record<string, unknown[]>; exactNumbers: boolean } | null> {
  if (!/;\s*boundary\s*=/i.test(contentType)) return null;
  const parts = await readParts(contentType, body, limits);
  const value = Object.create(null) as Record<string, unknown[]>;
  let exactNumbers = false;
  for (const part of parts) {
    let v: unknown = part.data.toString('utf8');
    if (part.contentType.includes('application/json')) {
      const parsed = parseExactJSON(v as string, PART_DEPTH, limits.maxInputDepth);
      v = parsed.value;
      exactNumbers ||= parsed.exactNumbers;
    }
    const list = value[part.name];
    if (list) list.push(v);
    else value[part.name] = [v];
  }
  return { value, exactNumbers };
}

interface Part {
  name: string;
  contentType: string;
  data: Buffer;
}

function readParts(contentType: string, body: Buffer, limits: MultipartLimits): Promise<Part[]> {
  return new Promise((resolve, reject) => {
    const parts: Part[] = [];
    const fail = (err: unknown): void =>
      reject(err instanceof VerdictError ? err : new VerdictError('ERR_REQUEST_BODY_PARSE', `multipart: ${(err as Error).message}`));
    let bb: ReturnType<typeof Busboy>;
    try {
      bb = Busboy({
        headers: { 'content-type': contentType },
        // Every part is read as bytes (Go's io.ReadAll), never re-decoded by a charset.
        isPartAFile: () => true,
        // busboy drops part headers past headerPairs / headerSize without a word, so a Content-Disposition
        // after 16 KiB (or 100 lines) of padding hid its part from the policy while Go's reader (10 MiB,
        // 10,000 lines) and the upstream see it. The body is at most maxParsedBodyBytes: no header can pass that.
        limits: {
          parts: limits.maxQueryParams,
          fileSize: limits.maxParsedBodyBytes,
          headerPairs: limits.maxParsedBodyBytes,
          headerSize: limits.maxParsedBodyBytes,
        },
      });
    } catch (err) {
      fail(err);
      return;
    }
    bb.on('file', (name: string | undefined, stream, _filename, _encoding, mimeType: string) => {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        if (name !== undefined && name !== '') parts.push({ name, contentType: mimeType, data: Buffer.concat(chunks) });
      });
      stream.on('error', fail);
    });
    bb.on('partsLimit', () => fail(new VerdictError('ERR_REQUEST_TOO_MANY_PARAMS', `more than ${limits.maxQueryParams} multipart parts`)));
    bb.on('error', fail);
    bb.on('finish', () => resolve(parts));
    bb.end(body);
  });
}
