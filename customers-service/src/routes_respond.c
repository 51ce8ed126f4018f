/* The one place customers-service answers a use-case result: svc_respond_result plus the
 * Retry-After header of a 429 whose details carry retry_after (the login guard's refusal, on
 * login and on a password change). */
#include <stdio.h>

#include "routes.h"

void routes_respond(struct svc_req *r, struct svc_result *res) {
    json_t *ra = res->st == SVC_RATE_LIMITED && res->details ? json_object_get(res->details, "retry_after") : NULL;
    if (json_is_integer(ra)) {
        char v[24];
        snprintf(v, sizeof v, "%lld", (long long)json_integer_value(ra));
        svc_set_header(r, "Retry-After", v);
    }
    svc_respond_result(r, res);
}
