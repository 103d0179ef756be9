export interface HostStatus {
  /** "healthy", or Envoy's failure flags joined by "/" (e.g. "/failed_active_hc", "/failed_outlier_check"). */
  healthFlags: string;
  rqSuccess: number;
  rqError: number;
}

/** Per-host state of one cluster from Envoy's admin /clusters (text form: `cluster::host::field::value`). */
export async function clusterHosts(adminPort: number, cluster: string): Promise<Map<string, HostStatus>> {
  const text = await (await fetch(`http://127.0.0.1:${adminPort}/clusters`)).text();
  const hosts = new Map<string, HostStatus>();
  for (const line of text.split('\n')) {
    const [name, host, field, value] = line.split('::');
    if (name !== cluster || host === undefined || value === undefined || !/^[\d.]+:\d+$/.test(host)) continue;
    const h = hosts.get(host) ?? { healthFlags: '', rqSuccess: 0, rqError: 0 };
    if (field === 'health_flags') h.healthFlags = value;
    if (field === 'rq_success') h.rqSuccess = Number(value);
    if (field === 'rq_error') h.rqError = Number(value);
    hosts.set(host, h);
  }
  return hosts;
}
