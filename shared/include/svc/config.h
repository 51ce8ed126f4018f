/* Configuration from the environment.
 *
 * Every value may come from NAME or, for secrets, from the file named by NAME_FILE (the file's
 * content with one trailing newline removed). Problems are collected, not fatal one by one:
 * svc_config_check() prints a single clear line naming every bad variable and the service exits 1.
 *
 * Ownership: strings returned by svc_config_* are owned by the svc_config and stay valid until
 * svc_config_free(). The struct is filled at start and read-only afterwards (safe to share
 * between threads without locking). */
#ifndef SVC_CONFIG_H
#define SVC_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#define SVC_CONFIG_MAX_ERRORS 32

struct svc_config {
    char *errors[SVC_CONFIG_MAX_ERRORS];
    int nerrors;
    char *owned[128];   /* values read from files, freed with the config */
    int nowned;
};

void svc_config_init(struct svc_config *c);
void svc_config_free(struct svc_config *c);

/* A string; NULL default means required. NAME_FILE wins over NAME when both are set. */
const char *svc_config_str(struct svc_config *c, const char *name, const char *def);
/* An integer within [min,max]; def used when unset. A malformed value is recorded as an error. */
long svc_config_int(struct svc_config *c, const char *name, long def, long min, long max);
/* A boolean: true/false/1/0/yes/no. */
bool svc_config_bool(struct svc_config *c, const char *name, bool def);
/* Record a custom validation error ("NAME: message"). */
void svc_config_error(struct svc_config *c, const char *name, const char *msg);

/* Returns 0 when no errors. Otherwise writes one line
 * "<service>: configuration error: A: missing; B: not an integer" to stderr and returns -1. */
int svc_config_check(struct svc_config *c, const char *service);

/* Read a whole small file (secrets, keys) into a new NUL-terminated buffer; caller frees.
 * Strips one trailing newline when strip is true. Returns NULL and sets errno on failure. */
char *svc_read_file(const char *path, size_t max, size_t *len_out, bool strip);

#endif
