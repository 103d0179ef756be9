import { describe, expect, it } from 'vitest';
import { toDecisionEvent } from '../../../src/decisionlog/decision-event';
import { recordWithSecrets } from '../../helpers/decisionlog-fixtures';

describe('toDecisionEvent: tenant label and shadow fields', () => {
  const ctx = { labels: { id: 'instance-1', version: 'verdict' }, path: 'envoy/authz/allow' };

  it('adds the tenant to the labels without touching the shared labels object', () => {
    const { record, decision } = recordWithSecrets(1);
    const event = toDecisionEvent({ ...record, tenant: 'acme' }, decision, ctx);
    expect(event.labels).toEqual({ id: 'instance-1', version: 'verdict', tenant: 'acme' });
    expect(ctx.labels).toEqual({ id: 'instance-1', version: 'verdict' });
    expect(toDecisionEvent(record, decision, ctx).labels).toBe(ctx.labels);
  });

  it('carries kind and both outcomes of a shadow event; a decision has neither', () => {
    const { record, decision } = recordWithSecrets(2);
    const shadow = { direction: 'allow_to_deny', active: { allowed: true }, candidate: { allowed: false } };
    const event = toDecisionEvent({ ...record, kind: 'shadow', shadow }, decision, ctx);
    expect(event).toMatchObject({ kind: 'shadow', shadow });
    const plain = toDecisionEvent(record, decision, ctx);
    expect(plain.kind).toBeUndefined();
    expect(plain.shadow).toBeUndefined();
  });
});
