/* customers-service entry point: wiring only (config -> pools -> routes -> serve -> shutdown). */
#include <stdlib.h>

#include "svc/app.h"

int main(void) {
    struct svc_app app;
    svc_app_init(&app, "customers", "customers");
    if (svc_app_check_config(&app) != 0) {
        svc_app_close(&app);
        return EXIT_FAILURE;
    }
    if (svc_app_open(&app) != 0) {
        svc_app_close(&app);
        return EXIT_FAILURE;
    }
    return svc_app_run(&app);
}
