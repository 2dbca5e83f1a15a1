/* Token -> id hash for WordPiece: open addressing, linear probing, load factor <= 1/2.
 * Built once at load; lookups are read-only and safe from many threads. */
#include <stdlib.h>
#include <string.h>

#include "text/tokenizer_impl.h"

#define FNV_OFFSET 2166136261u
#define FNV_PRIME 16777619u

static uint32_t fnv_more(uint32_t h, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * FNV_PRIME;
    return h;
}

uint32_t ake_vocab_hash2(const char *a, size_t alen, const char *b, size_t blen) {
    /* final avalanche: FNV-1a alone leaves the low bits (our slot index) weakly mixed */
    uint32_t h = fnv_more(fnv_more(FNV_OFFSET, a, alen), b, blen);
    h ^= h >> 16;
    h *= 0x7feb352du;
    h ^= h >> 15;
    return h;
}

static bool entry_is(const ake_vocab *v, const ake_vocab_entry *e, uint32_t h, const char *a, size_t alen,
                     const char *b, size_t blen) {
    return e->hash == h && e->len == alen + blen && memcmp(v->pool + e->off, a, alen) == 0 &&
           memcmp(v->pool + e->off + alen, b, blen) == 0;
}

int32_t ake_vocab_get2(const ake_vocab *v, const char *a, size_t alen, const char *b, size_t blen) {
    if (!v->slots || alen + blen > v->max_len) return -1;
    uint32_t h = ake_vocab_hash2(a, alen, b, blen);
    for (uint32_t i = h & v->mask;; i = (i + 1) & v->mask) {
        uint32_t s = v->slots[i];
        if (!s) return -1;
        const ake_vocab_entry *e = &v->entries[s - 1];
        if (entry_is(v, e, h, a, alen, b, blen)) return e->id;
    }
}

/* Doubles the slot table (or creates it) and re-inserts every entry. */
static ake_status rehash(ake_vocab *v, uint32_t nslots) {
    uint32_t *slots = calloc(nslots, sizeof *slots);
    if (!slots) return AKE_ENOMEM;
    uint32_t mask = nslots - 1;
    for (uint32_t k = 0; k < v->n; k++) {
        uint32_t i = v->entries[k].hash & mask;
        while (slots[i]) i = (i + 1) & mask;
        slots[i] = k + 1;
    }
    free(v->slots);
    v->slots = slots;
    v->mask = mask;
    return AKE_OK;
}

ake_status ake_vocab_put(ake_vocab *v, const char *tok, size_t len, int32_t id) {
    uint32_t h = ake_vocab_hash2("", 0, tok, len);
    if (v->slots) {
        for (uint32_t i = h & v->mask; v->slots[i]; i = (i + 1) & v->mask) {
            ake_vocab_entry *e = &v->entries[v->slots[i] - 1];
            if (entry_is(v, e, h, "", 0, tok, len)) {
                e->id = id;
                return AKE_OK;
            }
        }
    }
    if (v->n >= (uint32_t)INT32_MAX || len > UINT32_MAX - v->pool_len) return AKE_ETOOLONG;
    if ((size_t)v->n + 1 > (size_t)(v->mask + 1) / 2 || !v->slots) {
        uint32_t nslots = v->slots ? (v->mask + 1) * 2 : 1024;
        if (nslots == 0) return AKE_ETOOLONG;
        ake_status st = rehash(v, nslots);
        if (st) return st;
    }
    if (v->n == v->entries_cap) {
        uint32_t cap = v->entries_cap ? v->entries_cap * 2 : 1024;
        ake_vocab_entry *e = realloc(v->entries, (size_t)cap * sizeof *e);
        if (!e) return AKE_ENOMEM;
        v->entries = e;
        v->entries_cap = cap;
    }
    if (v->pool_len + len > v->pool_cap) {
        size_t cap = v->pool_cap ? v->pool_cap : 4096;
        while (cap < v->pool_len + len) cap *= 2;
        char *p = realloc(v->pool, cap);
        if (!p) return AKE_ENOMEM;
        v->pool = p;
        v->pool_cap = cap;
    }
    if (len) memcpy(v->pool + v->pool_len, tok, len);
    v->entries[v->n] = (ake_vocab_entry){.off = (uint32_t)v->pool_len, .len = (uint32_t)len, .hash = h, .id = id};
    v->pool_len += len;
    uint32_t i = h & v->mask;
    while (v->slots[i]) i = (i + 1) & v->mask;
    v->slots[i] = ++v->n;
    if (len > v->max_len) v->max_len = (uint32_t)len;
    return AKE_OK;
}

void ake_vocab_free(ake_vocab *v) {
    free(v->pool);
    free(v->entries);
    free(v->slots);
    memset(v, 0, sizeof *v);
}
