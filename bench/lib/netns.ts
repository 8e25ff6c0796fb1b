import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Hosts on one machine: a Linux network namespace each, with an address on one bridged network
 * and a folder of its own (its HOME, working directory and caches), joined by veth links to a
 * bridge in a "switch" namespace. A host's link can be cut and restored. Needs root and iproute2
 * (`ip`), which .ci/run provides; without them this throws, saying so, rather than skipping.
 * Used by the multi-host test (test/workers/hosts.test.ts) and by bench:workers --hosts and
 * bench:scaling. The namespaces and folders go with destroy(), or when the process exits.
 */
export interface Host {
  name: string;
  ns: string;
  address: string;
  /** this host's own folder */
  dir: string;
  /** the command prefix that runs a program on this host */
  via: string[];
}

export interface Network {
  hosts: Record<string, Host>;
  /** with `joinRoot`: this machine's own address on the network (its root namespace joins the bridge) */
  rootAddress?: string;
  /** takes the host's link down (its processes keep running, cut off) */
  cut(host: string): void;
  restore(host: string): void;
  destroy(): void;
}

function ip(args: string[]): void {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  if (r.error || r.status !== 0) throw new Error(`ip ${args.join(' ')} failed: ${r.error?.message ?? r.stderr.trim()}`);
}

/** Why hosts cannot be made here, or undefined when they can. */
export function netnsUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'network namespaces need root (CI runs as root)';
  if (spawnSync('ip', ['-V']).status !== 0) return 'iproute2 is not installed (apt-get install -y iproute2; .ci/run does it)';
  return undefined;
}

export function createNetwork(names: string[], opts: { joinRoot?: boolean } = {}): Network {
  const why = netnsUnavailable();
  if (why) throw new Error(`cannot create test hosts: ${why}`);
  // names unique to this run; a /24 in 10.0.0.0/8 inside namespaces nobody else can reach
  const id = (process.pid % 46656).toString(36).padStart(3, '0');
  const subnet = `10.${200 + (process.pid % 50)}.${Math.floor(process.pid / 50) % 250}`;
  const sw = `kn${id}-switch`;
  const made: string[] = [];
  const hosts: Record<string, Host> = {};
  const links: Record<string, string> = {};
  const folders: string[] = [];
  const destroy = () => {
    for (const ns of made.reverse()) spawnSync('ip', ['netns', 'del', ns]);
    made.length = 0;
    for (const f of folders.splice(0)) rmSync(f, { recursive: true, force: true });
  };
  process.on('exit', destroy);
  try {
    ip(['netns', 'add', sw]);
    made.push(sw);
    ip(['-n', sw, 'link', 'add', 'br0', 'type', 'bridge']);
    ip(['-n', sw, 'link', 'set', 'br0', 'up']);
    names.forEach((name, i) => {
      const ns = `kn${id}-${name}`;
      const port = `kv${id}${i}`;
      const peer = `kh${id}${i}`;
      ip(['netns', 'add', ns]);
      made.push(ns);
      ip(['link', 'add', port, 'type', 'veth', 'peer', 'name', peer]);
      ip(['link', 'set', port, 'netns', sw]);
      ip(['link', 'set', peer, 'netns', ns]);
      ip(['-n', ns, 'link', 'set', peer, 'name', 'eth0']);
      const address = `${subnet}.${i + 1}`;
      ip(['-n', ns, 'addr', 'add', `${address}/24`, 'dev', 'eth0']);
      ip(['-n', ns, 'link', 'set', 'eth0', 'up']);
      ip(['-n', ns, 'link', 'set', 'lo', 'up']);
      ip(['-n', sw, 'link', 'set', port, 'master', 'br0']);
      ip(['-n', sw, 'link', 'set', port, 'up']);
      links[name] = port;
      const dir = mkdtempSync(join(tmpdir(), `kennel-host-${name}-`));
      folders.push(dir);
      hosts[name] = { name, ns, address, dir, via: ['ip', 'netns', 'exec', ns] };
    });
    if (opts.joinRoot) {
      // a link from the root namespace too, so this process reaches the hosts (it goes with the switch)
      const port = `kv${id}r`;
      const peer = `kr${id}`;
      ip(['link', 'add', port, 'type', 'veth', 'peer', 'name', peer]);
      ip(['link', 'set', port, 'netns', sw]);
      ip(['addr', 'add', `${subnet}.254/24`, 'dev', peer]);
      ip(['link', 'set', peer, 'up']);
      ip(['-n', sw, 'link', 'set', port, 'master', 'br0']);
      ip(['-n', sw, 'link', 'set', port, 'up']);
    }
  } catch (e) {
    destroy();
    throw e;
  }
  return {
    hosts,
    rootAddress: opts.joinRoot ? `${subnet}.254` : undefined,
    cut: (host) => ip(['-n', sw, 'link', 'set', links[host]!, 'down']),
    restore: (host) => ip(['-n', sw, 'link', 'set', links[host]!, 'up']),
    destroy,
  };
}
