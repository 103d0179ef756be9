import { z } from 'zod';

/**
 * Bounds shared by free-form strings of the config. Each value is echoed in logs and errors, so each has
 * a length a real value never reaches.
 */

/** A host name or IP literal to listen on: RFC 1035 §2.3.4 caps a DNS name at 253 characters in text. */
export const hostSchema = z.string().min(1).max(253);
