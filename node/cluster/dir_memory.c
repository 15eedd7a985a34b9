/* The embedded directory of a single node: IDs, sessions, mailboxes and room members in this
 * process's memory. */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "base/loop.h"
#include "base/map.h"
#include "cluster/dir.h"

/* How often sessions whose window has passed are ended. */
#define SESSION_TICK 0.25

typedef struct {
    char **ids;
    size_t n, cap;
} room_t;

typedef struct held {
    struct held *next;
    size_t len;
    char data[];
} held_t;

/* A claimed ID. While detached, it waits on the detached list until deadline. */
typedef struct session {
    char *id;
    char *token;
    char **rooms; /* the rooms it is in */
    size_t nrooms, cap;
    int detached;
    double deadline;
    struct session *prev, *next; /* the detached list, oldest first */
    held_t *head, *tail;         /* its mailbox */
    size_t nheld, bytes;
} session_t;

typedef struct {
    sb_dir_t base;
    sb_dir_sessions_t cfg;
    sb_map_t *ids;   /* claimed id -> session_t */
    sb_map_t *rooms; /* room -> room_t */
    session_t *detached_head, *detached_tail;
    struct event *timer;
} memory_dir_t;

static void unlink_detached(memory_dir_t *m, session_t *s)
{
    if (!s->detached)
        return;
    *(s->prev ? &s->prev->next : &m->detached_head) = s->next;
    *(s->next ? &s->next->prev : &m->detached_tail) = s->prev;
    s->prev = s->next = NULL;
    s->detached = 0;
}

static void drop_held(session_t *s)
{
    while (s->head) {
        held_t *h = s->head;
        s->head = h->next;
        free(h);
    }
    s->tail = NULL;
    s->nheld = s->bytes = 0;
}

static int set_token(session_t *s, const char *token)
{
    char *copy = strdup(token);
    if (copy == NULL)
        return -1;
    free(s->token);
    s->token = copy;
    return 0;
}

/* Removes id from room (and the room when it is left empty). */
static void room_remove(memory_dir_t *m, const char *name, const char *id)
{
    room_t *room = sb_map_get(m->rooms, name);
    for (size_t i = 0; room != NULL && i < room->n; i++)
        if (strcmp(room->ids[i], id) == 0) {
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
}

static void session_free(memory_dir_t *m, session_t *s)
{
    unlink_detached(m, s);
    drop_held(s);
    for (size_t i = 0; i < s->nrooms; i++)
        free(s->rooms[i]);
    free(s->rooms);
    free(s->token);
    free(s->id);
    free(s);
}

/* Ends a session: out of its rooms (whose members hear of it when announce) and its ID free. */
static void session_end(memory_dir_t *m, session_t *s, int announce)
{
    for (size_t i = 0; i < s->nrooms; i++)
        room_remove(m, s->rooms[i], s->id);
    if (announce && s->nrooms > 0 && m->base.ended)
        m->base.ended(m->base.ctx, s->id, (const char *const *)s->rooms, s->nrooms);
    sb_map_remove(m->ids, s->id);
    session_free(m, s);
}

/* Answers a resume: the session's rooms with their members and its held messages. */
static void answer_resumed(memory_dir_t *m, session_t *s, sb_dir_claim_fn done, void *arg)
{
    sb_dir_room_t *rooms = calloc(s->nrooms + 1, sizeof(*rooms));
    sb_str_t *held = calloc(s->nheld + 1, sizeof(*held));
    if (rooms == NULL || held == NULL) {
        free(rooms);
        free(held);
        done(arg, SB_DIR_UNAVAILABLE, NULL);
        return;
    }
    size_t n = 0, k = 0;
    for (size_t i = 0; i < s->nrooms; i++) {
        room_t *room = sb_map_get(m->rooms, s->rooms[i]);
        if (room != NULL)
            rooms[n++] = (sb_dir_room_t){s->rooms[i], (const char *const *)room->ids, room->n};
    }
    for (held_t *h = s->head; h != NULL; h = h->next)
        held[k++] = (sb_str_t){h->data, h->len};
    sb_dir_session_t session = {1, rooms, n, held, k};
    done(arg, SB_DIR_OK, &session);
    free(rooms);
    free(held);
    drop_held(s); /* delivered once */
}

static void claim(sb_dir_t *d, const char *id, sb_dir_claim_how_t how, const char *resume,
                  const char *token, sb_dir_claim_fn done, void *arg)
{
    memory_dir_t *m = (memory_dir_t *)d;
    session_t *s = sb_map_get(m->ids, id);
    sb_dir_session_t fresh = {0};
    (void)how; /* every session here is this node's: the table below says who holds what */

    if (s != NULL) {
        size_t len = resume ? strlen(resume) : 0;
        /* One node: every session is this node's, so only a matching token takes one over. */
        if (resume == NULL || len != strlen(s->token) ||
            CRYPTO_memcmp(resume, s->token, len) != 0) {
            done(arg, SB_DIR_TAKEN, NULL);
            return;
        }
        if (set_token(s, token) != 0) {
            done(arg, SB_DIR_UNAVAILABLE, NULL);
            return;
        }
        unlink_detached(m, s);
        answer_resumed(m, s, done, arg);
        return;
    }
    if ((s = calloc(1, sizeof(*s))) == NULL || (s->id = strdup(id)) == NULL ||
        set_token(s, token) != 0 || sb_map_put(m->ids, id, s) != 0) {
        if (s)
            session_free(m, s);
        done(arg, SB_DIR_UNAVAILABLE, NULL);
        return;
    }
    done(arg, SB_DIR_OK, &fresh);
}

static void release(sb_dir_t *d, const char *id)
{
    memory_dir_t *m = (memory_dir_t *)d;
    session_t *s = sb_map_get(m->ids, id);
    if (s != NULL)
        session_end(m, s, 0); /* its rooms were left by the caller */
}

static void detach(sb_dir_t *d, const char *id)
{
    memory_dir_t *m = (memory_dir_t *)d;
    session_t *s = sb_map_get(m->ids, id);
    if (s == NULL || s->detached)
        return;
    if (m->cfg.resume_seconds <= 0) {
        session_end(m, s, 1);
        return;
    }
    s->detached = 1;
    s->deadline = sb_clock_mono() + m->cfg.resume_seconds;
    s->prev = m->detached_tail;
    *(m->detached_tail ? &m->detached_tail->next : &m->detached_head) = s;
    m->detached_tail = s;
}

static void put(sb_dir_t *d, const char *id, const char *env, size_t len, sb_dir_put_fn done,
                void *arg)
{
    memory_dir_t *m = (memory_dir_t *)d;
    session_t *s = sb_map_get(m->ids, id);
    if (s == NULL || (s->detached && s->deadline <= sb_clock_mono())) {
        done(arg, SB_DIR_GONE);
        return;
    }
    if (!s->detached) {
        done(arg, SB_DIR_LIVE); /* being claimed or resumed here: it subscribes in a moment */
        return;
    }
    if (s->nheld >= m->cfg.mailbox_messages || s->bytes + len > m->cfg.mailbox_bytes) {
        done(arg, SB_DIR_BOXFULL);
        return;
    }
    held_t *h = malloc(sizeof(*h) + len);
    if (h == NULL) {
        done(arg, SB_DIR_PUT_UNAVAILABLE);
        return;
    }
    h->next = NULL;
    h->len = len;
    memcpy(h->data, env, len);
    *(s->tail ? &s->tail->next : &s->head) = h;
    s->tail = h;
    s->nheld++;
    s->bytes += len;
    done(arg, SB_DIR_QUEUED);
}

/* Ends the sessions whose window has passed. */
static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    memory_dir_t *m = arg;
    double now = sb_clock_mono();
    (void)fd;
    (void)what;
    while (m->detached_head != NULL && m->detached_head->deadline <= now)
        session_end(m, m->detached_head, 1);
}

static int session_add_room(session_t *s, const char *name)
{
    if (s->nrooms == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 4;
        char **rooms = realloc(s->rooms, cap * sizeof(*rooms));
        if (rooms == NULL)
            return -1;
        s->rooms = rooms;
        s->cap = cap;
    }
    if ((s->rooms[s->nrooms] = strdup(name)) == NULL)
        return -1;
    s->nrooms++;
    return 0;
}

static void session_remove_room(session_t *s, const char *name)
{
    for (size_t i = 0; i < s->nrooms; i++)
        if (strcmp(s->rooms[i], name) == 0) {
            free(s->rooms[i]);
            s->rooms[i] = s->rooms[--s->nrooms];
            return;
        }
}

static void join(sb_dir_t *d, const char *name, const char *peer, size_t limit, sb_dir_join_fn done,
                 void *arg)
{
    memory_dir_t *m = (memory_dir_t *)d;
    room_t *room = sb_map_get(m->rooms, name);
    session_t *s = sb_map_get(m->ids, peer);
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
        if ((room->ids[room->n] = strdup(peer)) == NULL ||
            (s != NULL && session_add_room(s, name) != 0)) {
            free(room->ids[room->n]);
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
    session_t *s = sb_map_get(m->ids, peer);
    if (s != NULL)
        session_remove_room(s, name);
    room_remove(m, name, peer);
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
    if (m->timer)
        event_free(m->timer);
    while (m->rooms && sb_map_next(m->rooms, &cursor, &key, &value)) {
        room_t *room = value;
        for (size_t i = 0; i < room->n; i++)
            free(room->ids[i]);
        free(room->ids);
        free(room);
    }
    cursor = 0;
    while (m->ids && sb_map_next(m->ids, &cursor, &key, &value))
        session_free(m, value);
    sb_map_free(m->rooms);
    sb_map_free(m->ids);
    free(m);
}

static const sb_dir_ops_t ops = {claim, release, detach, put, join, leave, ready, idle, dir_free};

sb_dir_t *sb_dir_memory_new(struct event_base *base, const sb_dir_sessions_t *sessions)
{
    memory_dir_t *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return NULL;
    m->base.ops = &ops;
    m->cfg = *sessions;
    m->ids = sb_map_new();
    m->rooms = sb_map_new();
    m->timer = event_new(base, -1, EV_PERSIST, on_tick, m);
    struct timeval tv = {0, (suseconds_t)(SESSION_TICK * 1e6)};
    if (m->ids == NULL || m->rooms == NULL || m->timer == NULL || event_add(m->timer, &tv) != 0) {
        dir_free(&m->base);
        return NULL;
    }
    return &m->base;
}
