/* Socket options for NBD traffic over TCP. */
#ifndef R3M_NBD_TCP_TUNE_H
#define R3M_NBD_TCP_TUNE_H

#include <sys/socket.h>

/* Tune a connected TCP socket whose ends are local and peer.  Best effort:
 * a failed option leaves the socket working as before. */
void nbd_tcp_tune (int fd, const struct sockaddr_storage *local,
                   const struct sockaddr_storage *peer);

#endif
