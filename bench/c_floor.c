/*
 * c_floor: the "bare C loop" reference of bench/compare.sh.
 *
 * Reads a classic pcap file (Ethernet link type, either byte order, micro- or
 * nanosecond timestamps) through its own buffer, walks every record, decodes
 * Ethernet, up to two 802.1Q/802.1ad tags, IPv4 or IPv6 (a few extension headers),
 * TCP/UDP ports, builds a direction-independent 5-tuple key and counts distinct flows
 * in an open-addressing (linear probing) hash table that stores the keys, so the count
 * is exact. That is the minimal work of any flow monitor: read + 5-tuple flow hash.
 * Nothing else (no classification, no per-flow counters beyond presence).
 *
 * Output, one line:  packets=N ip_packets=N flows=N
 * Exit: 0 ok, 1 usage or I/O error, 2 not a classic Ethernet pcap or a damaged file.
 *
 * Build: gcc -O2 -o target/bench/c_floor bench/c_floor.c   (bench/compare.sh does it)
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BUF_SIZE (1u << 20)   /* read buffer: 1 MiB */
#define MAX_SNAP (1u << 18)   /* largest record we accept (pcap snaplen is <= 256 KiB) */

/* ---------- buffered reader ---------- */

struct reader {
    int fd;
    unsigned char *buf;
    size_t cap, start, end;
    int eof;
    int err; /* errno of a failed read, 0 if none */
};

/* Makes at least `n` bytes available at r->buf + r->start; returns 0 on success,
 * 1 at a clean end of file (no byte left), -1 on a short tail or an I/O error. */
static int need(struct reader *r, size_t n)
{
    while (r->end - r->start < n) {
        if (r->eof)
            return r->end == r->start ? 1 : -1;
        if (r->start > 0) {
            memmove(r->buf, r->buf + r->start, r->end - r->start);
            r->end -= r->start;
            r->start = 0;
        }
        ssize_t got = read(r->fd, r->buf + r->end, r->cap - r->end);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            r->err = errno;
            return -1;
        }
        if (got == 0)
            r->eof = 1;
        r->end += (size_t)got;
    }
    return 0;
}

/* ---------- flow key and table ---------- */

struct key {             /* 40 bytes, zero-padded so it can be hashed and compared as words */
    uint8_t a[16], b[16]; /* lower endpoint first */
    uint16_t pa, pb;
    uint8_t proto, family;
    uint8_t pad[2];
};

struct slot {
    uint64_t hash;        /* 0: empty */
    struct key key;
};

static struct slot *table;
static size_t table_mask, table_used;

static inline uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

static inline uint64_t hash_key(const struct key *k)
{
    uint64_t w[5];
    memcpy(w, k, sizeof w);
    uint64_t h = 0x9e3779b97f4a7c15ULL;
    for (int i = 0; i < 5; i++)
        h = (h ^ w[i]) * 0x100000001b3ULL + (h >> 29);
    h = mix64(h);
    return h ? h : 1;
}

static void table_init(size_t slots)
{
    table = calloc(slots, sizeof *table);
    if (!table) {
        perror("c_floor: calloc");
        exit(1);
    }
    table_mask = slots - 1;
    table_used = 0;
}

static void insert_slot(struct slot *t, size_t mask, const struct slot *s)
{
    size_t i = s->hash & mask;
    while (t[i].hash)
        i = (i + 1) & mask;
    t[i] = *s;
}

static void table_grow(void)
{
    size_t slots = (table_mask + 1) * 2;
    struct slot *t = calloc(slots, sizeof *t);
    if (!t) {
        perror("c_floor: calloc");
        exit(1);
    }
    for (size_t i = 0; i <= table_mask; i++)
        if (table[i].hash)
            insert_slot(t, slots - 1, &table[i]);
    free(table);
    table = t;
    table_mask = slots - 1;
}

/* Counts the flow of `k` if it is new. */
static inline void table_add(const struct key *k)
{
    uint64_t h = hash_key(k);
    size_t i = h & table_mask;
    for (;;) {
        struct slot *s = &table[i];
        if (s->hash == 0)
            break;
        if (s->hash == h && memcmp(&s->key, k, sizeof *k) == 0)
            return;
        i = (i + 1) & table_mask;
    }
    table[i].hash = h;
    table[i].key = *k;
    if (++table_used * 10 > (table_mask + 1) * 7) /* load factor 0.7 */
        table_grow();
}

/* ---------- decoding ---------- */

static inline uint16_t be16(const unsigned char *p) { return (uint16_t)(p[0] << 8 | p[1]); }

/* Builds the flow key of an Ethernet frame; returns 0 if it is not IP. */
static int frame_key(const unsigned char *p, size_t len, struct key *k)
{
    if (len < 14)
        return 0;
    uint16_t et = be16(p + 12);
    size_t off = 14;
    for (int tags = 0; tags < 2 && (et == 0x8100 || et == 0x88a8); tags++) {
        if (len < off + 4)
            return 0;
        et = be16(p + off + 2);
        off += 4;
    }
    const unsigned char *src, *dst;
    size_t alen, l4;
    uint8_t proto;
    memset(k, 0, sizeof *k);
    if (et == 0x0800) {
        if (len < off + 20 || (p[off] >> 4) != 4)
            return 0;
        size_t ihl = (size_t)(p[off] & 0x0f) * 4;
        if (ihl < 20 || len < off + ihl)
            return 0;
        proto = p[off + 9];
        src = p + off + 12;
        dst = p + off + 16;
        alen = 4;
        /* ports only in the first fragment */
        l4 = (be16(p + off + 6) & 0x1fff) ? 0 : off + ihl;
        k->family = 4;
    } else if (et == 0x86dd) {
        if (len < off + 40 || (p[off] >> 4) != 6)
            return 0;
        proto = p[off + 6];
        src = p + off + 8;
        dst = p + off + 24;
        alen = 16;
        l4 = off + 40;
        /* hop-by-hop, routing, destination options, fragment: at most 4 headers */
        for (int i = 0; i < 4 && l4; i++) {
            if (proto == 0 || proto == 43 || proto == 60) {
                if (len < l4 + 8)
                    return 0;
                proto = p[l4];
                l4 += ((size_t)p[l4 + 1] + 1) * 8;
            } else if (proto == 44) {
                if (len < l4 + 8)
                    return 0;
                proto = p[l4];
                l4 = (be16(p + l4 + 2) & 0xfff8) ? 0 : l4 + 8;
            } else {
                break;
            }
        }
        k->family = 6;
    } else {
        return 0;
    }
    uint16_t sp = 0, dp = 0;
    if (l4 && (proto == 6 || proto == 17 || proto == 132) && len >= l4 + 4) {
        sp = be16(p + l4);
        dp = be16(p + l4 + 2);
    }
    k->proto = proto;
    int c = memcmp(src, dst, alen);
    if (c < 0 || (c == 0 && sp <= dp)) {
        memcpy(k->a, src, alen);
        memcpy(k->b, dst, alen);
        k->pa = sp;
        k->pb = dp;
    } else {
        memcpy(k->a, dst, alen);
        memcpy(k->b, src, alen);
        k->pa = dp;
        k->pb = sp;
    }
    return 1;
}

/* ---------- main ---------- */

static uint32_t rd32(const unsigned char *p, int swap)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return swap ? __builtin_bswap32(v) : v;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: c_floor FILE.pcap\n");
        return 1;
    }
    struct reader r = {.fd = open(argv[1], O_RDONLY), .cap = BUF_SIZE + MAX_SNAP + 16};
    if (r.fd < 0) {
        fprintf(stderr, "c_floor: %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    r.buf = malloc(r.cap);
    if (!r.buf) {
        perror("c_floor: malloc");
        return 1;
    }
    if (need(&r, 24) != 0) {
        fprintf(stderr, "c_floor: %s: shorter than a pcap header\n", argv[1]);
        return 2;
    }
    uint32_t magic;
    memcpy(&magic, r.buf, 4);
    int swap;
    if (magic == 0xa1b2c3d4 || magic == 0xa1b23c4d)
        swap = 0;
    else if (magic == 0xd4c3b2a1 || magic == 0x4d3cb2a1)
        swap = 1;
    else {
        fprintf(stderr, "c_floor: %s: not a classic pcap file (pcapng is not read)\n", argv[1]);
        return 2;
    }
    uint32_t linktype = rd32(r.buf + 20, swap) & 0x0fffffff;
    if (linktype != 1) {
        fprintf(stderr, "c_floor: %s: link type %u, only Ethernet (1) is read\n", argv[1], linktype);
        return 2;
    }
    r.start = 24;

    table_init(1u << 16);
    uint64_t packets = 0, ip_packets = 0;
    struct key k;
    for (;;) {
        int st = need(&r, 16);
        if (st == 1)
            break;
        if (st < 0) {
            fprintf(stderr, "c_floor: %s: %s after %llu packets\n", argv[1],
                    r.err ? strerror(r.err) : "truncated record header", (unsigned long long)packets);
            return r.err ? 1 : 2;
        }
        uint32_t caplen = rd32(r.buf + r.start + 8, swap);
        if (caplen > MAX_SNAP) {
            fprintf(stderr, "c_floor: %s: record %llu has caplen %u\n", argv[1],
                    (unsigned long long)packets + 1, caplen);
            return 2;
        }
        if (need(&r, 16 + (size_t)caplen) != 0) {
            fprintf(stderr, "c_floor: %s: %s after %llu packets\n", argv[1],
                    r.err ? strerror(r.err) : "truncated record", (unsigned long long)packets);
            return r.err ? 1 : 2;
        }
        const unsigned char *frame = r.buf + r.start + 16;
        packets++;
        if (frame_key(frame, caplen, &k)) {
            ip_packets++;
            table_add(&k);
        }
        r.start += 16 + (size_t)caplen;
    }
    printf("packets=%llu ip_packets=%llu flows=%zu\n", (unsigned long long)packets,
           (unsigned long long)ip_packets, table_used);
    close(r.fd);
    free(r.buf);
    free(table);
    return 0;
}
