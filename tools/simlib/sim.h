/* What the simulators (tools/legacy-api, tools/erp-api) have in common: small libmicrohttpd
 * servers standing in for external systems in development and tests, nothing a service links.
 *
 * Here: answering (a body, a JSON value, the {"error":{"code","message"}} envelope; every answer
 * carries Cache-Control: no-store), the per-request fault RNG (splitmix64), sleeping in slices
 * while watching a stop flag, strict number parsing of query values and of the environment, and
 * the daemon's life. A simulator's routes, knobs and shutdown policy stay in the simulator.
 *
 * The daemon: PORT (required, 1-65535) and BIND (a numeric IPv4 or IPv6 address, default
 * 127.0.0.1) from the environment; one thread per connection (a handler may sleep: a simulated
 * latency or a slow stream blocks only its own connection); SIGTERM and SIGINT blocked in every
 * thread and taken synchronously by sim_server_wait_signal; SIGPIPE ignored. Its diagnostics go to
 * the simulator's JSON log. Stopping is in two steps so that a simulator can wait for running
 * requests in between: quiesce (no new connections; attempts fail fast) then stop.
 * A configuration error prints "<service>: configuration error: <why>" to stderr and exits 1.
 *
 * Synchronisation: the answer, RNG and parsing helpers touch only their arguments; the request
 * counter of sim_rng_seed is atomic; sim_sleep_ms only reads its flag, which another thread sets.
 * The sim_server functions belong to the main thread, called in this order: sim_server_env,
 * sim_server_start, sim_server_wait_signal, sim_server_quiesce, sim_server_stop.
 *
 * Ownership: sim_respond copies the body; sim_respond_json takes the JSON value (also on
 * failure). struct sim_server is the caller's; the logger it is given is borrowed and must outlive
 * the daemon; sim_server_stop closes the daemon and its listening socket. */
#ifndef SIM_H
#define SIM_H

#include <jansson.h>
#include <microhttpd.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "svc/log.h"

/* ------------------------------------------------------------------ answers */

/* Queues status with body[0..len) as ctype, plus the header hname: hvalue when hname is set. */
enum MHD_Result sim_respond(struct MHD_Connection *c, unsigned status, const char *ctype, const char *body,
                            size_t len, const char *hname, const char *hvalue);
/* j as compact application/json (reals with 12 significant digits); j NULL → MHD_NO. */
enum MHD_Result sim_respond_json(struct MHD_Connection *c, unsigned status, json_t *j);
/* {"error":{"code":code,"message":message}} as application/json. */
enum MHD_Result sim_respond_error(struct MHD_Connection *c, unsigned status, const char *code,
                                  const char *message, const char *hname, const char *hvalue);

/* ------------------------------------------------------------------ fault RNG */

/* splitmix64: the next value of the sequence, advancing *state. */
uint64_t sim_rng_next(uint64_t *state);
/* True with probability p (p <= 0 never, p >= 1 always, without drawing). */
bool sim_chance(uint64_t *state, double p);
/* A fresh state for one request's fault decisions: from the clock and *requests (incremented), so
 * that decisions differ between requests (a retry can succeed); never from a content seed. */
uint64_t sim_rng_seed(atomic_uint_fast64_t *requests);

/* ------------------------------------------------------------------ waiting and parsing */

/* Sleeps ms milliseconds in slices of at most 50 ms; false as soon as *stop is seen set (before a
 * slice or at the end), true when the whole time passed. */
bool sim_sleep_ms(const atomic_bool *stop, long ms);

/* s is all decimal digits (no sign, no space) with a value <= max: *out set, true. */
bool sim_parse_uint(const char *s, unsigned long max, unsigned long *out);

/* Prints the configuration error and exits 1. */
_Noreturn void sim_die_config(const char *service, const char *msg);
/* The integer environment variable name, def when unset or empty; anything else than an integer
 * in [min, max] is a configuration error. */
long sim_env_long(const char *service, const char *name, long def, long min, long max);

/* ------------------------------------------------------------------ the daemon */

struct sim_server_opts {
    MHD_AccessHandlerCallback handler;
    void *handler_cls;
    MHD_RequestCompletedCallback completed;   /* NULL: none */
    void *completed_cls;
    const struct svc_logger *log;             /* libmicrohttpd's diagnostics */
    svc_log_level mhd_level;                  /* their level ... */
    const char *mhd_debug;                    /* ... except those containing this (NULL: none): DEBUG */
};

struct sim_server {
    const char *service;
    long port;
    const char *bind;                 /* points into the environment */
    sigset_t sigs;
    struct MHD_Daemon *daemon;
    MHD_socket lsock;
    struct sim_server_opts opts;
};

/* Reads PORT and BIND (configuration errors exit). Starts nothing: the simulator reads its own
 * settings next, then calls sim_server_start. */
void sim_server_env(struct sim_server *s, const char *service);
/* Blocks the signals (before any thread exists, so every daemon thread inherits the mask) and
 * starts the daemon. A BIND that is no numeric address exits as a configuration error; -1 when
 * the daemon cannot listen (reason on stderr). */
int sim_server_start(struct sim_server *s, const struct sim_server_opts *o);
/* Waits for SIGTERM or SIGINT; returns it. */
int sim_server_wait_signal(struct sim_server *s);
/* Stops accepting: the listening socket is shut down (not yet closed); running requests go on. */
void sim_server_quiesce(struct sim_server *s);
/* Stops the daemon (running connections are closed) and closes the listening socket. */
void sim_server_stop(struct sim_server *s);

#endif
