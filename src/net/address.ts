import { BlockList, isIP } from 'node:net';

/** A named address range Kennel never connects to on a caller's behalf. */
interface Range {
  cidr: string;
  why: string;
}

const V4_REFUSED: Range[] = [
  { cidr: '0.0.0.0/8', why: 'unspecified ("this network")' },
  { cidr: '10.0.0.0/8', why: 'private' },
  { cidr: '100.64.0.0/10', why: 'carrier-grade NAT (shared)' },
  { cidr: '127.0.0.0/8', why: 'loopback' },
  { cidr: '169.254.0.0/16', why: 'link-local (cloud metadata)' },
  { cidr: '172.16.0.0/12', why: 'private' },
  { cidr: '192.0.0.0/24', why: 'reserved (IETF protocol assignments)' },
  { cidr: '192.0.2.0/24', why: 'reserved (documentation)' },
  { cidr: '192.88.99.0/24', why: 'reserved (6to4 relay)' },
  { cidr: '192.168.0.0/16', why: 'private' },
  { cidr: '198.18.0.0/15', why: 'reserved (benchmarking)' },
  { cidr: '198.51.100.0/24', why: 'reserved (documentation)' },
  { cidr: '203.0.113.0/24', why: 'reserved (documentation)' },
  { cidr: '224.0.0.0/4', why: 'multicast' },
  { cidr: '240.0.0.0/4', why: 'reserved or broadcast' },
];

// Outside 2000::/3 (global unicast) every IPv6 address is refused; these name the common ones.
const V6_REFUSED: Range[] = [
  { cidr: '::/128', why: 'unspecified' },
  { cidr: '::1/128', why: 'loopback' },
  { cidr: '::ffff:0:0/96', why: 'IPv4-mapped IPv6' },
  { cidr: '::/96', why: 'IPv4-compatible IPv6' },
  { cidr: '64:ff9b::/96', why: 'NAT64 (embeds an IPv4 address)' },
  { cidr: '64:ff9b:1::/48', why: 'NAT64 (embeds an IPv4 address)' },
  { cidr: 'fc00::/7', why: 'unique local (private)' },
  { cidr: 'fe80::/10', why: 'link-local' },
  { cidr: 'fec0::/10', why: 'site-local' },
  { cidr: 'ff00::/8', why: 'multicast' },
  // inside 2000::/3 but not safe to reach
  { cidr: '2001::/23', why: 'reserved (IETF protocol assignments, Teredo)' },
  { cidr: '2001:db8::/32', why: 'reserved (documentation)' },
  { cidr: '2002::/16', why: '6to4 (embeds an IPv4 address)' },
  { cidr: '3fff::/20', why: 'reserved (documentation)' },
];

type Family = 'ipv4' | 'ipv6';

function compile(ranges: Range[], family: Family): Array<{ list: BlockList; why: string }> {
  return ranges.map((r) => {
    const [net, bits] = r.cidr.split('/');
    const list = new BlockList();
    list.addSubnet(net!, Number(bits), family);
    return { list, why: r.why };
  });
}

const v4 = compile(V4_REFUSED, 'ipv4');
const v6 = compile(V6_REFUSED, 'ipv6');
const globalUnicast = compile([{ cidr: '2000::/3', why: '' }], 'ipv6')[0]!.list;

/**
 * Why `ip` must not be connected to, or undefined for a public unicast address. Families are
 * checked separately because node's BlockList treats IPv4 rules as covering ::ffff:0:0/96 and
 * the reverse.
 */
export function refusedReason(ip: string): string | undefined {
  if (ip.includes('%')) return 'link-local (scoped)';
  const family = isIP(ip);
  if (family === 4) return v4.find((r) => r.list.check(ip, 'ipv4'))?.why;
  if (family === 6) {
    const named = v6.find((r) => r.list.check(ip, 'ipv6'))?.why;
    if (named) return named;
    return globalUnicast.check(ip, 'ipv6') ? undefined : 'reserved';
  }
  return 'not an IP address';
}

/**
 * An explicit exception list of addresses or CIDRs (e.g. `127.0.0.1` in tests). An entry only
 * matches addresses of its own family, so allowing 127.0.0.1 does not allow ::ffff:127.0.0.1.
 */
export class AddressAllowlist {
  private readonly lists: Record<Family, BlockList> = { ipv4: new BlockList(), ipv6: new BlockList() };

  constructor(entries: readonly string[]) {
    for (const entry of entries) {
      const [net, bits] = entry.split('/');
      const family = isIP(net ?? '');
      if (!family) throw new Error(`allowPrivate entry "${entry}" is not an IP address or CIDR`);
      const type: Family = family === 4 ? 'ipv4' : 'ipv6';
      if (bits === undefined) this.lists[type].addAddress(net!, type);
      else this.lists[type].addSubnet(net!, Number(bits), type);
    }
  }

  has(ip: string): boolean {
    const family = isIP(ip);
    if (family === 4) return this.lists.ipv4.check(ip, 'ipv4');
    if (family === 6) return !ip.toLowerCase().startsWith('::ffff:') && this.lists.ipv6.check(ip, 'ipv6');
    return false;
  }
}
