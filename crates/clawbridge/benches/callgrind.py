#!/usr/bin/env python3
"""Instructions per request of the webhook bench's server, from two callgrind runs.

The server role of `cargo bench -p clawbridge --bench webhook` is run under callgrind twice, with
N1 and N2 requests over the same wall time (BENCH_SERVER_SECONDS), and the per-request cost is
(cost(N2) - cost(N1)) / (N2 - N1): start-up, shutdown and periodic work cancel out. Self costs are
put into categories by function name (first match wins); inclusive costs of functions matching
the extra arguments (regular expressions) are printed too.

    BENCH=$(ls -t target/release/deps/webhook-* | grep -v '\.d$' | head -1)
    for n in 1000 3000; do
      BENCH_ONLY=throughput BENCH_WEBHOOK_N=$n BENCH_SERVER_SECONDS=40 \
      BENCH_SERVER_WRAPPER="valgrind --tool=callgrind --callgrind-out-file=/tmp/cg-$n.out" $BENCH
    done
    python3 crates/clawbridge/benches/callgrind.py /tmp/cg-1000.out 1000 /tmp/cg-3000.out 3000 \
      'webhook::receive::\{\{closure\}\}$' 'parse_webhook$' 'sqlite3_step$'

Valgrind hides SHA extensions from the program, so the HMAC is counted in its portable form
(several times the native instructions); kernel time (syscalls, wake-ups) is not counted at all."""
import re, subprocess, sys
from collections import defaultdict

LINE = re.compile(r'^\s*([\d,]+) \([^)]*\)\s+(.*?):(.*?)(?: \[(.*)\])?$')

def costs(path, inclusive):
    out = subprocess.run(['callgrind_annotate', '--threshold=100', '--auto=no',
                          f'--inclusive={"yes" if inclusive else "no"}', path],
                         capture_output=True, text=True, check=True).stdout
    total, per = 0, defaultdict(int)
    for line in out.splitlines():
        if 'PROGRAM TOTALS' in line:
            total = int(line.split()[0].replace(',', ''))
            continue
        m = LINE.match(line)
        if m:
            f, v = m.group(3).strip(), int(m.group(1).replace(',', ''))
            # Inclusive: the same function listed once per source file of its inlined lines, each
            # time with its whole inclusive cost, so take the largest; self costs add up.
            per[f] = max(per[f], v) if inclusive else per[f] + v
    return total, per

CATEGORIES = [  # first match wins, on the function name (self cost)
    ('SQLite (C library)', r'^(sqlite3|vdbe|btree|pager|wal|pcache|robin|memjrnl|unix|exprAnalyze|yy|sqlite)|^[a-z][A-Za-z0-9]*$'),
    ('sqlx (driver, worker thread, statement cache)', r'sqlx|flume|libsqlite3'),
    ('HMAC-SHA256 (soft under valgrind)', r'sha2::|hmac::|digest::|block_buffer'),
    ('JSON parse/serialise (serde, serde_json)', r'serde_json|serde::|<serde|Deserialize|Serialize|RawValue'),
    ('WhatsApp normalise (inbound, webhook)', r'clawbridge_whatsapp|clawbridge_core'),
    ('store glue (group commit, payload)', r'clawbridge_store|clawbridge::bridge'),
    ('HTTP (hyper, axum, http)', r'hyper|axum|^http::|<http::|httparse|tower|matchit|bytes::'),
    ('logging (tracing, fmt)', r'tracing|core::fmt|fmt::Write|Formatter|Display|Debug|nu_ansi|time::'),
    ('metrics', r'metrics|quanta|sketches|portable_atomic'),
    ('tokio runtime, mio, wakeups', r'tokio|mio::|parking_lot|futex|epoll|pthread|__lll|sched_|syscall|clock_gettime|std::sync|std::thread|crossbeam|event_listener'),
    ('allocation (malloc/free)', r'malloc|free|_int_|realloc|calloc|unlink_chunk|tcache|arena|alloc::alloc|__rust_(alloc|dealloc|realloc)|RawVec|drop_in_place'),
    ('memcpy/memset/memcmp', r'^__mem|^mem|__strlen|__strchr|__strcmp'),
]

def main():
    a, n1, b, n2 = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    d = n2 - n1
    ta, sa = costs(a, False)
    tb, sb = costs(b, False)
    print(f'total per request: {(tb - ta) / d:,.0f} instructions  ({n1}: {ta:,}  {n2}: {tb:,})')
    cats = defaultdict(int)
    other = defaultdict(int)
    for f in set(sa) | set(sb):
        delta = sb.get(f, 0) - sa.get(f, 0)
        for name, rx in CATEGORIES:
            if re.search(rx, f):
                cats[name] += delta
                break
        else:
            cats['other'] += delta
            other[f] += delta
    print('\nself cost by category, instructions per request:')
    for name, v in sorted(cats.items(), key=lambda kv: -kv[1]):
        print(f'  {v / d:>10,.0f}  {name}')
    print('\nlargest "other":')
    for f, v in sorted(other.items(), key=lambda kv: -kv[1])[:15]:
        print(f'  {v / d:>10,.0f}  {f[:150]}')
    print('\nlargest functions (self):')
    deltas = {f: sb.get(f, 0) - sa.get(f, 0) for f in set(sa) | set(sb)}
    for f, v in sorted(deltas.items(), key=lambda kv: -kv[1])[:40]:
        print(f'  {v / d:>10,.0f}  {f[:150]}')
    _, ia = costs(a, True)
    _, ib = costs(b, True)
    anchors = sys.argv[5:] if len(sys.argv) > 5 else []
    if anchors:
        print('\ninclusive, instructions per request:')
        for pat in anchors:
            hits = [(f, ib.get(f, 0) - ia.get(f, 0)) for f in set(ia) | set(ib) if re.search(pat, f)]
            for f, v in sorted(hits, key=lambda kv: -kv[1])[:4]:
                print(f'  {v / d:>10,.0f}  {f[:160]}')

main()
