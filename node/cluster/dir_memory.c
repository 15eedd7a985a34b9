/* The embedded directory of a single node: IDs and room members in this process's memory. */
#include <stdlib.h>
#include <string.h>

#include "cluster/dir.h"
#include "base/map.h"

typedef struct {
    char **ids;
    size_t n, cap;
} room_t;

typedef struct {
    sb_dir_t base;
    sb_map_t *ids;   /* claimed id -> marker */
    sb_map_t *rooms; /* room -> room_t */
} memory_dir_t;

static void claim(sb_dir_t *d, const char *id, sb_dir_claim_fn done, void *arg)
{
    memory_dir_t *m = (memory_dir_t *)d;
    if (sb_map_get(m->ids, id) != NULL)
        done(arg, SB_DIR_TAKEN);
    else
        done(arg, sb_map_put(m->ids, id, m) == 0 ? SB_DIR_OK : SB_DIR_UNAVAILABLE);
}

static void held(sb_dir_t *d, const char *id, sb_dir_held_fn done, void *arg)
{
    done(arg, sb_map_get(((memory_dir_t *)d)->ids, id) != NULL);
}

static void release(sb_dir_t *d, const char *id) { sb_map_remove(((memory_dir_t *)d)->ids, id); }

static void join(sb_dir_t *d, const char *name, const char *peer, size_t limit, sb_dir_join_fn done,
                 void *arg)
{
    memory_dir_t *m = (memory_dir_t *)d;
    room_t *room = sb_map_get(m->rooms, name);
    int added = 1;

    if (room == NULL) {
        room = calloc(1, sizeof(*room));
        if (room == NULL || sb_map_put(m->rooms, name, room) != 0) {
            free(room);
            done(arg, SB_DIR_UNAVAILABLE, 0, NULL, NULL, 0);
            return;
        }
    }
    for (size_t i = 0; i < room->n; i++)
        if (strcmp(room->ids[i], peer) == 0)
            added = 0;
    if (added) {
        if (room->n >= limit) {
            done(arg, SB_DIR_FULL, 0, NULL, NULL, 0);
            return;
        }
        if (room->n == room->cap) {
            size_t cap = room->cap ? room->cap * 2 : 4;
            char **ids = realloc(room->ids, cap * sizeof(*ids));
            if (ids == NULL) {
                done(arg, SB_DIR_UNAVAILABLE, 0, NULL, NULL, 0);
                return;
            }
            room->ids = ids;
            room->cap = cap;
        }
        if ((room->ids[room->n] = strdup(peer)) == NULL) {
            done(arg, SB_DIR_UNAVAILABLE, 0, NULL, NULL, 0);
            return;
        }
        room->n++;
    }
    done(arg, SB_DIR_OK, added, (const char *const *)room->ids, NULL, room->n);
}

static void leave(sb_dir_t *d, const char *name, const char *peer, sb_dir_done_fn done, void *arg)
{
    memory_dir_t *m = (memory_dir_t *)d;
    room_t *room = sb_map_get(m->rooms, name);
    for (size_t i = 0; room != NULL && i < room->n; i++)
        if (strcmp(room->ids[i], peer) == 0) {
            free(room->ids[i]);
            memmove(&room->ids[i], &room->ids[i + 1], (room->n - i - 1) * sizeof(*room->ids));
            room->n--;
            break;
        }
    if (room != NULL && room->n == 0) {
        sb_map_remove(m->rooms, name);
        free(room->ids);
        free(room);
    }
    if (done)
        done(arg);
}

static int ready(sb_dir_t *d, char *why, size_t len)
{
    (void)d;
    (void)why;
    (void)len;
    return 1; /* in-process: always */
}

static int idle(sb_dir_t *d)
{
    (void)d;
    return 1; /* every change is made before it returns */
}

static void dir_free(sb_dir_t *d)
{
    memory_dir_t *m = (memory_dir_t *)d;
    size_t cursor = 0;
    const char *key;
    void *value;
    while (sb_map_next(m->rooms, &cursor, &key, &value)) {
        room_t *room = value;
        for (size_t i = 0; i < room->n; i++)
            free(room->ids[i]);
        free(room->ids);
        free(room);
    }
    sb_map_free(m->rooms);
    sb_map_free(m->ids);
    free(m);
}

static const sb_dir_ops_t ops = {claim, release, held, join, leave, ready, idle, dir_free};

sb_dir_t *sb_dir_memory_new(void)
{
    memory_dir_t *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return NULL;
    m->ids = sb_map_new();
    m->rooms = sb_map_new();
    if (m->ids == NULL || m->rooms == NULL) {
        sb_map_free(m->ids);
        sb_map_free(m->rooms);
        free(m);
        return NULL;
    }
    m->base.ops = &ops;
    return &m->base;
}
