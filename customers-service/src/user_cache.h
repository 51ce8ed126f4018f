/* Redis cache of public user JSON by id and by lower-cased user name.
 *
 * Only live (not deleted) users are cached, with a short TTL (USER_CACHE_TTL_S); every update or
 * delete invalidates both keys, so a read after a write never sees stale data from this cache.
 * Cache failures are not errors: a miss falls through to PostgreSQL.
 * In front of Redis sits an in-process layer (svc/tcache.h, USER_LOCAL_CACHE_MS ≤ 1000 ms, 0 = off)
 * that Redis keeps coherent with invalidation pushes for every ucache: key any instance changes,
 * so the hot read path usually needs no Redis round trip.
 * Keys: "ucache:id:{id}" and "ucache:name:{lower(user_name)}". Returned strings are owned by the
 * caller (free()). */
#ifndef CUSTOMERS_USER_CACHE_H
#define CUSTOMERS_USER_CACHE_H

#include "ctx.h"

/* The key space, owned here: the local layer watches USER_CACHE_PREFIX, and everything that
 * builds a key (this file, bulk_upsert.c's invalidation) uses the two functions below. */
#define USER_CACHE_PREFIX "ucache:"
#define USER_CACHE_KEY_MAX 96
/* "ucache:id:{id}" into out; returns its length, or 0 (out = "") when id does not fit. */
size_t user_cache_key_id(char out[USER_CACHE_KEY_MAX], const char *id);
/* "ucache:name:{lower(user_name)}" (ASCII lower case) into out; returns its length, or 0 when it
 * does not fit. */
size_t user_cache_key_name(char out[USER_CACHE_KEY_MAX], const char *user_name);

char *user_cache_get_by_id(struct customers_ctx *cx, const char *id);
char *user_cache_get_by_name(struct customers_ctx *cx, const char *user_name);
/* Stores json under both keys (user_name read from the JSON). */
void user_cache_put(struct customers_ctx *cx, const char *json);
void user_cache_invalidate(struct customers_ctx *cx, const char *id, const char *user_name);

#endif
