/* serve_gateway.h: `hotpath serve --config FILE` (serve_gateway.c). */
#ifndef HP_SERVE_GATEWAY_H
#define HP_SERVE_GATEWAY_H

#include <stddef.h>

/* Run the gateway described by the config at config_path until
 * SIGINT/SIGTERM. host (NULL: the config's) and port (< 0: the config's)
 * override listen; max_body 0 = default. Returns the exit status. */
int hp_serve_gateway(const char *config_path, const char *host, int port,
                     size_t max_body);

#endif
