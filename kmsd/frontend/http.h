/*
 * http.h — the AWS-compatible HTTP(S) endpoint: AWS JSON 1.1 over
 * libmicrohttpd (POST /, X-Amz-Target: TrentService.<Op>), SigV4 or a
 * verified client certificate, onto the same dispatcher as IPC.
 *
 * Off unless cfg.http_listen is set.  libmicrohttpd's thread pool
 * (cfg.http_threads threads, epoll) serves the connections and runs the
 * quick operations (dispatch_op_quick) on the thread that read them; the
 * rest go to a pool of cfg.http_workers threads while their connection is
 * suspended.  Each thread owns one struct worker (HSM session, store
 * connection, locked scratch), made here.
 * Not thread-safe itself: started and stopped by the daemon's main thread.
 */
#ifndef KMSD_FRONTEND_HTTP_H
#define KMSD_FRONTEND_HTTP_H

#include <stddef.h>

struct kmsd;
struct http_front;

/*
 * Start the endpoint when configured (*out NULL when not): workers,
 * credentials, TLS material, the listener.  Says on standard output
 * "kmsd: http(s) on ADDRESS:PORT" (the port bound, when 0 was asked).
 * 0, or an error with a sentence in err.
 */
int http_start(struct kmsd *d, struct http_front **out, char *err,
    size_t errlen);
/* "ADDRESS:PORT" or "[v6]:PORT" → addresses (freeaddrinfo them); key
 * names the config key in err. */
struct addrinfo;
int http_resolve_listen(const char *key, const char *spec,
    struct addrinfo **out, char *err, size_t errlen);
/* Stop accepting, finish the requests in hand, free everything.  NULL is
 * fine. */
void http_stop(struct http_front *h);

#endif
