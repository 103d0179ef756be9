import * as protobuf from 'protobufjs';
import descriptor from 'protobufjs/ext/descriptor';

/**
 * A FileDescriptorSet made at test time from .proto text (protobufjs parse → ext/descriptor), as a user's
 * `protoc --include_imports --descriptor_set_out` file would hold it. Imports of google/protobuf
 * well-known types resolve from protobufjs' bundled copies. `root` encodes test messages.
 */
export function descriptorSetFromProto(
  source: string,
  /** `pkg.Msg.field` → a json_name to write (protobufjs' toDescriptor writes none; protoc always does). */
  jsonNames: Record<string, string> = {},
  syntax: 'proto2' | 'proto3' = 'proto3',
): { set: Buffer; root: protobuf.Root } {
  const root = new protobuf.Root();
  const parsed = protobuf.parse(source, root, { keepCase: true });
  for (const file of parsed.imports ?? []) {
    const common = protobuf.common.get(file) as { nested?: Record<string, protobuf.AnyNestedObject> } | null;
    if (common?.nested) root.addJSON(common.nested);
  }
  root.resolveAll();
  const set = (root as unknown as { toDescriptor(syntax: string): protobuf.Message }).toDescriptor(syntax);
  setJSONNames(set as unknown as DescriptorSet, jsonNames);
  return { set: Buffer.from(descriptor.FileDescriptorSet.encode(set).finish()), root };
}

/** One gRPC message frame (gRPC over HTTP/2, "Length-Prefixed-Message"): flag, 4-byte big-endian length, bytes. */
export function grpcFrame(message: Uint8Array, compressed = false, declaredLength = message.length): Buffer {
  const head = Buffer.alloc(5);
  head[0] = compressed ? 1 : 0;
  head.writeUInt32BE(declaredLength, 1);
  return Buffer.concat([head, message]);
}

interface DescriptorSet {
  file: { package?: string; messageType?: { name: string; field?: { name: string; jsonName?: string }[] }[] }[];
}

function setJSONNames(set: DescriptorSet, jsonNames: Record<string, string>): void {
  for (const file of set.file) {
    for (const msg of file.messageType ?? []) {
      for (const field of msg.field ?? []) {
        const name = jsonNames[`${file.package ?? ''}.${msg.name}.${field.name}`];
        if (name !== undefined) field.jsonName = name;
      }
    }
  }
}
