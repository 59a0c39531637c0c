/* Sending memory to a socket by reference (vmsplice, then splice). */
#ifndef R3M_NBD_SPLICE_SEND_H
#define R3M_NBD_SPLICE_SEND_H

#include <stddef.h>
#include <sys/uio.h>

/* A pipe to pass pages through; fd[0] < 0 until opened. */
struct splice_pipe {
  int fd[2];
  size_t size;
};

void splice_pipe_init (struct splice_pipe *p);
void splice_pipe_close (struct splice_pipe *p);

/* Write the nh iovecs in hdr to the blocking socket sock (copied), then
 * len bytes at data without copying them: the socket's buffers hold
 * references to the pages of data until the peer has the bytes.  Opens
 * the pipe on first use.  Never raises SIGPIPE.  0; -EOPNOTSUPP, with
 * nothing written, when no pipe can be had; or -errno (-ETIMEDOUT when
 * SO_SNDTIMEO ran out), after which the stream is broken. */
int splice_send (int sock, struct splice_pipe *p, const struct iovec *hdr,
                 int nh, const void *data, size_t len);

#endif
