/**
 * A single-process `KvService` for testing client front ends (HTTP, binary protocol, client
 * library) without a cluster: a real `KvStateMachine` applied directly, plus knobs to make it
 * answer like a follower, fail, or stall. Import-safe (no tests here).
 */
import { encodeOperation, isReadOperation, validateOperation, type KvOperation } from '../../src/kv/ops.js';
import { KvStateMachine } from '../../src/kv/state-machine.js';
import type {
  KvService,
  NodeEndpoint,
  NodeStatusReport,
  RequestId,
  ServiceFailure,
  ServiceResult,
  SubmitOptions,
} from '../../src/server/service.js';

export interface FakeServiceOptions {
  readonly id?: number;
  /** When set, every request gets `not_leader` pointing here (null: leader unknown). */
  notLeader?: NodeEndpoint | null;
  /** When set, every request fails with this error. */
  failWith?: ServiceFailure | null;
  /** Delay before answering (ms). */
  delayMs?: number;
}

export class FakeKvService implements KvService {
  readonly machine = new KvStateMachine();
  readonly submitted: { operation: KvOperation; id: RequestId | undefined }[] = [];
  readonly metricsContentType: string = 'text/plain; version=0.0.4; charset=utf-8';
  private slot = 0;
  private anonymous = 0;
  private readonly started = Date.now();

  constructor(readonly options: FakeServiceOptions = {}) {}

  async submit(operation: KvOperation, id?: RequestId, options?: SubmitOptions): Promise<ServiceResult> {
    this.submitted.push({ operation, id });
    const delayMs = this.options.delayMs ?? 0;
    if (delayMs > 0) {
      const timeoutMs = options?.timeoutMs ?? Infinity;
      await new Promise((resolve) => setTimeout(resolve, Math.min(delayMs, timeoutMs)));
      if (timeoutMs < delayMs) return { ok: false, error: 'timeout', message: 'fake service: timed out' };
    }
    if (this.options.failWith) return this.options.failWith;
    if (this.options.notLeader !== undefined) {
      const leader = this.options.notLeader;
      return leader === null
        ? { ok: false, error: 'not_leader', message: 'fake service: leader unknown' }
        : { ok: false, error: 'not_leader', message: `fake service: leader is node ${leader.id}`, leader };
    }
    const invalid = validateOperation(operation);
    if (invalid !== null) return invalid;
    if (isReadOperation(operation)) return this.machine.read(operation) as ServiceResult;
    const requestId = id ?? { clientId: `anonymous-${this.anonymous}`, seq: (this.anonymous += 1) };
    this.slot += 1;
    return this.machine.apply({ ...requestId, payload: encodeOperation(operation) }, this.slot) as ServiceResult;
  }

  status(): NodeStatusReport {
    const size = this.machine.stateMachineSize();
    return {
      id: this.options.id ?? 1,
      role: this.options.notLeader !== undefined ? 'follower' : 'leader',
      serving: this.options.notLeader === undefined,
      leader: this.options.notLeader ?? null,
      ballot: '1.1',
      firstUnchosen: this.slot + 1,
      appliedIndex: this.slot,
      maxSlot: this.slot,
      revision: this.machine.revision,
      keys: size.keys,
      peers: [],
      readMode: 'index',
      uptimeMs: Date.now() - this.started,
    };
  }

  async metrics(): Promise<string> {
    return '# HELP synod_fake_requests Requests seen.\n# TYPE synod_fake_requests counter\n' +
      `synod_fake_requests ${this.submitted.length}\n`;
  }
}
