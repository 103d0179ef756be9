import * as protobuf from 'protobufjs';
import descriptor from 'protobufjs/ext/descriptor';
import { VerdictError } from '../errors';
import { readConfiguredFile } from '../policy/bundle-file-read';

/** A descriptor set larger than this is refused at start-up (every API verdict's users ship is far smaller). */
export const MAX_DESCRIPTOR_BYTES = 16 * 1024 * 1024;

interface FieldDescriptorLike {
  name?: string;
  number?: number;
  jsonName?: string;
}
interface MessageDescriptorLike {
  name?: string;
  field?: FieldDescriptorLike[];
  nestedType?: MessageDescriptorLike[];
  options?: { mapEntry?: boolean };
}
interface FileDescriptorLike {
  package?: string;
  messageType?: MessageDescriptorLike[];
}

/**
 * The message types of a configured FileDescriptorSet (`policy.protoDescriptor`), as opa-envoy-plugin
 * loads its `proto-descriptor` into a protoregistry.Files once at start-up and resolves a gRPC body's input
 * type from the request path (envoyauth/request.go `findService`, `findMessageInputDesc`).
 */
export class GRPCBodyTypes {
  private constructor(
    private readonly root: protobuf.Root,
    /** `pkg.Msg#number` → the descriptor's json_name (ext/descriptor drops it; protojson writes it). */
    private readonly jsonNames: ReadonlyMap<string, string>,
    /** Full names of map entry types (ext/descriptor keeps a map as a repeated entry message). */
    private readonly mapEntries: ReadonlySet<string>,
  ) {}

  /** Reads and checks the file once; a missing, oversized, non-regular or undecodable file is ERR_CONFIG. */
  static fromFile(path: string): GRPCBodyTypes {
    return GRPCBodyTypes.fromBytes(readConfiguredFile(path, 'policy.protoDescriptor', MAX_DESCRIPTOR_BYTES), path);
  }

  static fromBytes(bytes: Buffer, what = 'protoDescriptor'): GRPCBodyTypes {
    try {
      const set = descriptor.FileDescriptorSet.decode(bytes);
      const plain = descriptor.FileDescriptorSet.toObject(set) as { file?: FileDescriptorLike[] };
      // An empty file decodes as a set of no files: configured, it would decode no body at all.
      if ((plain.file ?? []).length === 0) throw new VerdictError('ERR_CONFIG', `policy.protoDescriptor ${what} holds no file descriptors`);
      const root = (protobuf.Root as unknown as { fromDescriptor(d: unknown): protobuf.Root }).fromDescriptor(set);
      root.resolveAll();
      const names = collectNames(plain.file ?? []);
      return new GRPCBodyTypes(root, names.jsonNames, names.mapEntries);
    } catch (err) {
      if (err instanceof VerdictError) throw err;
      throw new VerdictError('ERR_CONFIG', `policy.protoDescriptor ${what} is not a usable FileDescriptorSet: ${(err as Error).message}`);
    }
  }

  /**
   * The input message of `service`/`method`, or null when the service or method is unknown or the method is
   * client-streaming: the peer then leaves the body unparsed. The service is looked up by its exact full
   * name (Go `FindDescriptorByName`), segment by segment, never by protobufjs' relative search.
   */
  inputType(service: string, method: string): protobuf.Type | null {
    let node: protobuf.ReflectionObject | null = this.root;
    for (const part of service.split('.')) {
      if (!(node instanceof protobuf.Namespace) || part === '') return null;
      node = node.get(part);
    }
    if (!(node instanceof protobuf.Service) || !Object.hasOwn(node.methods, method)) return null;
    const m = node.methods[method] as protobuf.Method;
    if (m.requestStream) return null;
    return m.resolvedRequestType;
  }

  /** A `map<K, V>` field: repeated entries of a map_entry message (key 1, value 2). */
  isMapField(field: protobuf.Field): boolean {
    let known = this.mapFields.get(field);
    if (known === undefined) {
      const t = field.resolvedType;
      known = field.repeated && t instanceof protobuf.Type && this.mapEntries.has(t.fullName.slice(1));
      this.mapFields.set(field, known);
    }
    return known;
  }

  /** protojson's key for a field: the descriptor's json_name, else Go's JSONCamelCase of the name. */
  jsonName(type: protobuf.Type, field: protobuf.Field): string {
    let name = this.keys.get(field);
    if (name === undefined) {
      name = this.jsonNames.get(`${type.fullName.slice(1)}#${field.id}`) ?? jsonCamelCase(field.name);
      this.keys.set(field, name);
    }
    return name;
  }

  /** A type's proto2 required fields (checked after each message, as proto.Unmarshal does). */
  requiredFields(type: protobuf.Type): readonly protobuf.Field[] {
    let list = this.required.get(type);
    if (list === undefined) {
      list = type.fieldsArray.filter((f) => f.required);
      this.required.set(type, list);
    }
    return list;
  }

  /** Whether a zero value is still written (explicit presence: proto2, `optional`, oneof members). */
  hasPresence(field: protobuf.Field): boolean {
    let known = this.presence.get(field);
    if (known === undefined) {
      known = field.hasPresence;
      this.presence.set(field, known);
    }
    return known;
  }

  /** A type's full name without the leading dot (protobufjs recomputes fullName on every read). */
  fullName(t: protobuf.Type | protobuf.Enum): string {
    let name = this.names.get(t);
    if (name === undefined) {
      name = t.fullName.slice(1);
      this.names.set(t, name);
    }
    return name;
  }

  private readonly required = new WeakMap<protobuf.Type, protobuf.Field[]>();
  private readonly presence = new WeakMap<protobuf.Field, boolean>();
  private readonly names = new WeakMap<protobuf.ReflectionObject, string>();
  /** Per-field answers, computed once: the descriptor never changes after start-up. */
  private readonly mapFields = new WeakMap<protobuf.Field, boolean>();
  private readonly keys = new WeakMap<protobuf.Field, string>();
}

function collectNames(files: FileDescriptorLike[]): { jsonNames: Map<string, string>; mapEntries: Set<string> } {
  const jsonNames = new Map<string, string>();
  const mapEntries = new Set<string>();
  const walk = (prefix: string, msgs: MessageDescriptorLike[] | undefined): void => {
    for (const m of msgs ?? []) {
      const full = prefix === '' ? (m.name ?? '') : `${prefix}.${m.name ?? ''}`;
      for (const f of m.field ?? []) if (f.jsonName) jsonNames.set(`${full}#${f.number ?? 0}`, f.jsonName);
      if (m.options?.mapEntry === true) mapEntries.add(full);
      walk(full, m.nestedType);
    }
  };
  for (const f of files) walk(f.package ?? '', f.messageType);
  return { jsonNames, mapEntries };
}

/** Go protobuf internal/strs.JSONCamelCase: drop `_`, upper-case an ASCII lower letter that followed one. */
export function jsonCamelCase(name: string): string {
  let out = '';
  let wasUnderscore = false;
  for (const c of name) {
    if (c !== '_') out += wasUnderscore && c >= 'a' && c <= 'z' ? c.toUpperCase() : c;
    wasUnderscore = c === '_';
  }
  return out;
}
