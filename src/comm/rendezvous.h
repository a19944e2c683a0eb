/* Private: the shared-file rendezvous of communicator bootstraps without MPI (the nccl backend's
 * ncclUniqueId exchange). One file per key in a directory every rank can read: the publisher writes
 * `<dir>/<key>.id` atomically (a temp file in the same directory, fsync, rename), the others poll for it
 * until a timeout. The file is one text line:
 *     galvatron-rendezvous 1 key=<key> world=<size> bytes=<n> fnv=<16 hex> <2n hex digits>
 * and readers check every field (a wrong key, world size or length, a bad checksum or a truncated file is
 * an error naming the file, never a silent mismatch). */
#ifndef GV_RENDEZVOUS_H
#define GV_RENDEZVOUS_H
#include <stddef.h>

#include "gv/status.h"

typedef struct {
    const char *dir;
    int rank, size;   /* this process's rank in [0, size) and the world size */
    double timeout_s; /* how long gv_rendezvous_wait polls */
} gv_rendezvous;

/* Checks dir (exists, is a directory), rank and size. */
gv_status gv_rendezvous_check(const gv_rendezvous *r);
/* Writes payload[n] under key (letters, digits, '-', '_', '.'). An existing file for the key is refused
 * (a stale file of an earlier job in the same directory: the others could read it). */
gv_status gv_rendezvous_publish(const gv_rendezvous *r, const char *key, const void *payload, size_t n);
/* Waits for the key's file (polling, 1 ms growing to 50 ms) and reads payload[n]. GV_ERR_IO after
 * timeout_s: "rendezvous DIR/KEY.id: no file after 5.0 s (rank 0 not started, or another directory?)". */
gv_status gv_rendezvous_wait(const gv_rendezvous *r, const char *key, void *payload, size_t n);
/* Removes the key's file (after every rank has read it); a missing file is not an error. */
gv_status gv_rendezvous_remove(const gv_rendezvous *r, const char *key);
/* The id exchange of a bootstrap: the publisher (the first rank of the world or group) writes payload[n],
 * every other member waits for it and reads it into payload. */
gv_status gv_rendezvous_share(const gv_rendezvous *r, const char *key, int publisher, void *payload,
                              size_t n);
/* The file name of a key, into buf. */
const char *gv_rendezvous_path(const gv_rendezvous *r, const char *key, char *buf, size_t n);

#endif
