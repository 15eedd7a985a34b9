/* Unit tests for node/base/config: defaults, environment and flags in that order, value syntax,
 * every refusal naming its option, --help and --version, --www, node IDs, and freeing. */
#include <check.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/config.h"
#include "base/log.h"
#include "helpers.h"
#include "message.h"

extern char **environ;

#define ERR_UNSET "(err not written)"

/* Forgets every SWITCHBOARD_* variable the test run inherited, so that each test sets its own. */
static void clear_env(void)
{
    char names[64][128];
    size_t n = 0;

    for (char **e = environ; *e != NULL && n < N_ELEMS(names); e++) {
        const char *eq = strchr(*e, '=');
        if (strncmp(*e, "SWITCHBOARD_", 12) == 0 && eq != NULL &&
            (size_t)(eq - *e) < sizeof(names[0]))
            snprintf(names[n++], sizeof(names[0]), "%.*s", (int)(eq - *e), *e);
    }
    for (size_t i = 0; i < n; i++)
        unsetenv(names[i]);
}

static void setup(void) { clear_env(); }

/* Loads with argv = "switchboard" then args (NULL-terminated). err starts as ERR_UNSET. */
static int load_args(sb_config_t *cfg, char *err, size_t errlen, const char *const *args)
{
    char *argv[64];
    int argc = 0;

    argv[argc++] = "switchboard";
    for (; *args != NULL; args++) {
        REQUIRE(argc < (int)N_ELEMS(argv) - 1, "too many arguments");
        argv[argc++] = (char *)*args;
    }
    argv[argc] = NULL;
    snprintf(err, errlen, "%s", ERR_UNSET);
    return sb_config_load(cfg, argc, argv, err, errlen);
}

#define LOAD(cfg, err, ...)                                                                        \
    load_args((cfg), (err), sizeof(err), (const char *const[]){__VA_ARGS__, NULL})
#define LOAD_NONE(cfg, err) load_args((cfg), (err), sizeof(err), (const char *const[]){NULL})

/* Loads args expecting success, with --www "" so that no directory is looked for. */
#define LOAD_OK(cfg, ...)                                                                          \
    do {                                                                                           \
        char err_[256];                                                                            \
        int rc_ = LOAD(cfg, err_, "--www", "", __VA_ARGS__);                                       \
        ck_assert_msg(rc_ == 0, "load returned %d: %s", rc_, err_);                                \
    } while (0)

/* Expects a refusal whose error contains want. */
#define LOAD_BAD(want, ...)                                                                        \
    do {                                                                                           \
        sb_config_t cfg_;                                                                          \
        char err_[256];                                                                            \
        int rc_ = LOAD(&cfg_, err_, __VA_ARGS__);                                                  \
        ck_assert_msg(rc_ == -1, "load of bad value returned %d, want -1 (%s)", rc_, want);        \
        ck_assert_msg(strstr(err_, want) != NULL, "error '%s' does not say '%s'", err_, want);     \
        sb_config_free(&cfg_);                                                                     \
    } while (0)

/* ---- defaults, environment, flags ----------------------------------------------------------- */

START_TEST(test_defaults)
{
    sb_config_t cfg;
    char err[256], www[PATH_MAX];

    ck_assert_int_eq(LOAD_NONE(&cfg, err), 0);
    ck_assert_str_eq(err, ERR_UNSET);
    ck_assert_str_eq(cfg.listen, "0.0.0.0:8080");
    ck_assert_int_eq(cfg.echo, 0);
    ck_assert_str_eq(cfg.redis, "");
    ck_assert_str_eq(cfg.ice_servers, "[{\"urls\":\"stun:stun.l.google.com:19302\"}]");
    ck_assert_double_eq(cfg.node_ttl, 3);
    ck_assert_uint_eq(cfg.max_rooms_per_peer, 16);
    ck_assert_uint_eq(cfg.max_room_peers, 64);
    ck_assert_uint_eq(cfg.max_message, 65536);
    ck_assert_uint_eq(cfg.max_output, 1048576);
    ck_assert_uint_eq(cfg.max_connections, 100000);
    ck_assert_double_eq(cfg.ping_interval, 25);
    ck_assert_double_eq(cfg.pong_timeout, 10);
    ck_assert_double_eq(cfg.handshake_timeout, 10);
    ck_assert_double_eq(cfg.close_timeout, 2);
    ck_assert_int_eq(cfg.log_level, SB_LOG_INFO);
    /* www "auto": nothing is installed beside the test binary, so the source tree's www/. */
    ck_assert_ptr_nonnull(realpath(SB_SOURCE_WWW, www));
    ck_assert_str_eq(cfg.www, www);
    ck_assert_msg(sb_peer_id_valid(cfg.node_id, strlen(cfg.node_id)), "generated node id '%s'",
                  cfg.node_id);
    sb_config_free(&cfg);
}
END_TEST

START_TEST(test_environment_overrides_defaults)
{
    sb_config_t cfg;

    setenv("SWITCHBOARD_LISTEN", "127.0.0.1:9000", 1);
    setenv("SWITCHBOARD_REDIS_URL", "redis://r:6379/2", 1);
    setenv("SWITCHBOARD_NODE_TTL", "4.5", 1);
    setenv("SWITCHBOARD_NODE_ID", "env-node", 1);
    setenv("SWITCHBOARD_ICE_SERVERS", "[ {\"urls\": [\"stun:a\", \"turn:b\"]} ]", 1);
    setenv("SWITCHBOARD_MAX_ROOMS_PER_PEER", "3", 1);
    setenv("SWITCHBOARD_MAX_ROOM_PEERS", "5", 1);
    setenv("SWITCHBOARD_ECHO", "yes", 1);
    setenv("SWITCHBOARD_MAX_MESSAGE", "8k", 1);
    setenv("SWITCHBOARD_MAX_OUTPUT", "2m", 1);
    setenv("SWITCHBOARD_MAX_CONNECTIONS", "7", 1);
    setenv("SWITCHBOARD_PING_INTERVAL", "1.5", 1);
    setenv("SWITCHBOARD_PONG_TIMEOUT", "0.25", 1);
    setenv("SWITCHBOARD_HANDSHAKE_TIMEOUT", "3", 1);
    setenv("SWITCHBOARD_CLOSE_TIMEOUT", "0.5", 1);
    setenv("SWITCHBOARD_LOG_LEVEL", "debug", 1);
    setenv("SWITCHBOARD_WWW", "", 1);
    LOAD_OK(&cfg, "--echo=yes"); /* a flag of another option changes nothing else */

    ck_assert_str_eq(cfg.listen, "127.0.0.1:9000");
    ck_assert_str_eq(cfg.redis, "redis://r:6379/2");
    ck_assert_double_eq(cfg.node_ttl, 4.5);
    ck_assert_str_eq(cfg.node_id, "env-node");
    ck_assert_str_eq(cfg.ice_servers, "[{\"urls\":[\"stun:a\",\"turn:b\"]}]"); /* compacted */
    ck_assert_uint_eq(cfg.max_rooms_per_peer, 3);
    ck_assert_uint_eq(cfg.max_room_peers, 5);
    ck_assert_int_eq(cfg.echo, 1);
    ck_assert_uint_eq(cfg.max_message, 8192);
    ck_assert_uint_eq(cfg.max_output, 2097152);
    ck_assert_uint_eq(cfg.max_connections, 7);
    ck_assert_double_eq(cfg.ping_interval, 1.5);
    ck_assert_double_eq(cfg.pong_timeout, 0.25);
    ck_assert_double_eq(cfg.handshake_timeout, 3);
    ck_assert_double_eq(cfg.close_timeout, 0.5);
    ck_assert_int_eq(cfg.log_level, SB_LOG_DEBUG);
    ck_assert_str_eq(cfg.www, "");
    sb_config_free(&cfg);
}
END_TEST

START_TEST(test_flags_override_environment)
{
    sb_config_t cfg;

    setenv("SWITCHBOARD_LISTEN", "127.0.0.1:9000", 1);
    setenv("SWITCHBOARD_MAX_MESSAGE", "8k", 1);
    setenv("SWITCHBOARD_PING_INTERVAL", "1.5", 1);
    setenv("SWITCHBOARD_ECHO", "1", 1);
    setenv("SWITCHBOARD_LOG_LEVEL", "debug", 1);
    setenv("SWITCHBOARD_NODE_ID", "env-node", 1);
    setenv("SWITCHBOARD_ICE_SERVERS", "[{\"urls\":\"stun:env\"}]", 1);
    LOAD_OK(&cfg, "--listen", "[::1]:0", "--max-message=1m", "--ping-interval", "30",
            "--echo=false", "--log-level", "error", "--node-id", "flag-node", "--ice-servers",
            "[]");

    ck_assert_str_eq(cfg.listen, "[::1]:0");
    ck_assert_uint_eq(cfg.max_message, 1048576);
    ck_assert_double_eq(cfg.ping_interval, 30);
    ck_assert_int_eq(cfg.echo, 0);
    ck_assert_int_eq(cfg.log_level, SB_LOG_ERROR);
    ck_assert_str_eq(cfg.node_id, "flag-node");
    ck_assert_str_eq(cfg.ice_servers, "[]");
    /* Untouched by flags: still from the environment, or the default. */
    unsetenv("SWITCHBOARD_LISTEN");
    sb_config_free(&cfg);
    LOAD_OK(&cfg, "--max-output", "1k");
    ck_assert_str_eq(cfg.listen, "0.0.0.0:8080");
    ck_assert_uint_eq(cfg.max_message, 8192);
    ck_assert_uint_eq(cfg.max_output, 1024);
    ck_assert_int_eq(cfg.echo, 1);
    sb_config_free(&cfg);
}
END_TEST

/* --flag=value and --flag value mean the same; the last of repeated flags wins. */
START_TEST(test_flag_forms)
{
    sb_config_t a, b;

    LOAD_OK(&a, "--listen=10.0.0.1:80", "--max-message=64k", "--close-timeout=0.75",
            "--log-level=warn", "--node-id=n1", "--ice-servers=[{\"urls\":\"stun:x=y\"}]");
    LOAD_OK(&b, "--listen", "10.0.0.1:80", "--max-message", "64k", "--close-timeout", "0.75",
            "--log-level", "warn", "--node-id", "n1", "--ice-servers", "[{\"urls\":\"stun:x=y\"}]");
    ck_assert_str_eq(a.listen, "10.0.0.1:80");
    ck_assert_str_eq(a.listen, b.listen);
    ck_assert_uint_eq(a.max_message, 65536);
    ck_assert_uint_eq(a.max_message, b.max_message);
    ck_assert_double_eq(a.close_timeout, 0.75);
    ck_assert_double_eq(a.close_timeout, b.close_timeout);
    ck_assert_int_eq(a.log_level, SB_LOG_WARN);
    ck_assert_int_eq(a.log_level, b.log_level);
    ck_assert_str_eq(a.node_id, "n1");
    ck_assert_str_eq(a.node_id, b.node_id);
    /* Only the first '=' separates: the value keeps the others. */
    ck_assert_str_eq(a.ice_servers, "[{\"urls\":\"stun:x=y\"}]");
    ck_assert_str_eq(a.ice_servers, b.ice_servers);
    sb_config_free(&a);
    sb_config_free(&b);

    /* A value that looks like a flag is still the value. */
    LOAD_OK(&a, "--listen", "--echo");
    ck_assert_str_eq(a.listen, "--echo");
    ck_assert_int_eq(a.echo, 0);
    sb_config_free(&a);

    /* --echo alone turns it on; =value sets it either way. */
    LOAD_OK(&a, "--echo");
    ck_assert_int_eq(a.echo, 1);
    sb_config_free(&a);
    static const char *const on[] = {"1", "true", "yes"}, *const off[] = {"0", "false", "no"};
    char arg[32];
    for (size_t i = 0; i < N_ELEMS(on); i++) {
        snprintf(arg, sizeof(arg), "--echo=%s", on[i]);
        LOAD_OK(&a, arg);
        ck_assert_msg(a.echo == 1, "%s", arg);
        sb_config_free(&a);
        snprintf(arg, sizeof(arg), "--echo=%s", off[i]);
        LOAD_OK(&a, "--echo", arg);
        ck_assert_msg(a.echo == 0, "%s", arg);
        sb_config_free(&a);
    }

    /* Repeated: the last wins, and the earlier strings are freed (LeakSanitizer checks). */
    LOAD_OK(&a, "--listen", "a:1", "--listen=b:2", "--listen", "c:3", "--max-output", "1k",
            "--max-output", "2k", "--node-id", "x", "--node-id", "y");
    ck_assert_str_eq(a.listen, "c:3");
    ck_assert_uint_eq(a.max_output, 2048);
    ck_assert_str_eq(a.node_id, "y");
    sb_config_free(&a);

    /* An empty value with '=' is a value: "" for strings. */
    LOAD_OK(&a, "--redis=");
    ck_assert_str_eq(a.redis, "");
    sb_config_free(&a);
}
END_TEST

/* Byte sizes (and counts) take an optional k, m or g suffix, binary, either case. */
START_TEST(test_sizes)
{
    static const struct {
        const char *value;
        size_t want;
    } cases[] = {
        {"1", 1},           {"65536", 65536},      {"1k", 1024},
        {"64K", 65536},     {"1m", 1048576},       {"3M", 3145728},
        {"1g", 1073741824}, {"1024m", 1073741824}, {"1073741824", 1073741824},
        {"007", 7},
    };
    sb_config_t cfg;
    char arg[64];

    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        snprintf(arg, sizeof(arg), "--max-message=%s", cases[i].value);
        LOAD_OK(&cfg, arg, "--max-output", cases[i].value, "--max-connections", cases[i].value,
                "--max-room-peers", cases[i].value, "--max-rooms-per-peer", cases[i].value);
        ck_assert_msg(cfg.max_message == cases[i].want, "max_message %s: %zu", cases[i].value,
                      cfg.max_message);
        ck_assert_msg(cfg.max_output == cases[i].want, "max_output %s: %zu", cases[i].value,
                      cfg.max_output);
        ck_assert_msg(cfg.max_connections == cases[i].want, "max_connections %s: %zu",
                      cases[i].value, cfg.max_connections);
        ck_assert_msg(cfg.max_room_peers == cases[i].want, "max_room_peers %s", cases[i].value);
        ck_assert_msg(cfg.max_rooms_per_peer == cases[i].want, "max_rooms_per_peer %s",
                      cases[i].value);
        sb_config_free(&cfg);
    }
}
END_TEST

/* Times are seconds, fractions allowed, up to a day. */
START_TEST(test_times)
{
    static const struct {
        const char *value;
        double want;
    } cases[] = {
        {"1", 1},         {"0.5", 0.5}, {"1.25", 1.25},   {".75", 0.75},
        {"0.001", 0.001}, {"2e1", 20},  {"86400", 86400},
    };
    sb_config_t cfg;

    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        const char *v = cases[i].value;
        LOAD_OK(&cfg, "--node-ttl", v, "--ping-interval", v, "--pong-timeout", v,
                "--handshake-timeout", v, "--close-timeout", v);
        ck_assert_msg(cfg.node_ttl == cases[i].want, "node_ttl %s: %g", v, cfg.node_ttl);
        ck_assert_msg(cfg.ping_interval == cases[i].want, "ping_interval %s", v);
        ck_assert_msg(cfg.pong_timeout == cases[i].want, "pong_timeout %s", v);
        ck_assert_msg(cfg.handshake_timeout == cases[i].want, "handshake_timeout %s", v);
        ck_assert_msg(cfg.close_timeout == cases[i].want, "close_timeout %s", v);
        sb_config_free(&cfg);
    }
}
END_TEST

START_TEST(test_log_levels)
{
    static const struct {
        const char *name;
        int level;
    } cases[] = {{"debug", SB_LOG_DEBUG},
                 {"info", SB_LOG_INFO},
                 {"warn", SB_LOG_WARN},
                 {"error", SB_LOG_ERROR}};
    sb_config_t cfg;

    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        LOAD_OK(&cfg, "--log-level", cases[i].name);
        ck_assert_msg(cfg.log_level == cases[i].level, "%s: %d", cases[i].name, cfg.log_level);
        sb_config_free(&cfg);
    }
}
END_TEST

/* ---- refusals ------------------------------------------------------------------------------- */

START_TEST(test_bad_options)
{
    LOAD_BAD("unknown option '--bogus'", "--bogus");
    LOAD_BAD("unknown option '--bogus=1'", "--bogus=1");
    LOAD_BAD("unknown option '--'", "--");
    LOAD_BAD("unknown option '--Listen'", "--Listen", "x:1");
    LOAD_BAD("unknown option '--help=1'", "--help=1");
    LOAD_BAD("unexpected argument 'listen'", "listen");
    LOAD_BAD("unexpected argument '-x'", "-x");
    LOAD_BAD("unexpected argument '0'", "--echo", "0"); /* a flag takes no separate value */
    LOAD_BAD("unexpected argument ''", "");
    LOAD_BAD("option --listen needs a value", "--listen");
    LOAD_BAD("option --max-message needs a value", "--echo", "--max-message");
    LOAD_BAD("option --ice-servers needs a value", "--ice-servers");
}
END_TEST

START_TEST(test_bad_numbers)
{
    static const char *const sizes[] = {
        "-1",
        "0",
        "",
        "abc",
        "12x",
        "1kk",
        "k",
        "1.5k",
        "1 k",
        "2g",
        "1073741825",
        "1025m",
        "99999999999999999999999",
        "18446744073709551616",
        "0x10",
        "1t",
    };
    static const char *const size_flags[] = {"max-message", "max-output", "max-connections",
                                             "max-room-peers", "max-rooms-per-peer"};
    static const char *const times[] = {
        "-1", "0", "-0.5", "", "abc", "1.5s", "1,5", "nan", "inf", "-inf", "86401", "1e999", "1e",
    };
    static const char *const time_flags[] = {"node-ttl", "ping-interval", "pong-timeout",
                                             "handshake-timeout", "close-timeout"};
    char want[128], flag[64];

    for (size_t f = 0; f < N_ELEMS(size_flags); f++)
        for (size_t i = 0; i < N_ELEMS(sizes); i++) {
            snprintf(flag, sizeof(flag), "--%s", size_flags[f]);
            snprintf(want, sizeof(want), "invalid value '%s' for --%s", sizes[i], size_flags[f]);
            LOAD_BAD(want, flag, sizes[i]);
        }
    for (size_t f = 0; f < N_ELEMS(time_flags); f++)
        for (size_t i = 0; i < N_ELEMS(times); i++) {
            snprintf(flag, sizeof(flag), "--%s=%s", time_flags[f], times[i]);
            snprintf(want, sizeof(want), "invalid value '%s' for --%s", times[i], time_flags[f]);
            LOAD_BAD(want, flag);
        }
}
END_TEST

START_TEST(test_bad_strings)
{
    LOAD_BAD("invalid value 'loud' for --log-level", "--log-level", "loud");
    LOAD_BAD("invalid value '' for --log-level", "--log-level=");
    LOAD_BAD("invalid value 'maybe' for --echo", "--echo=maybe");
    LOAD_BAD("invalid value '' for --echo", "--echo=");

    static const char *const ice[] = {
        "not json",
        "",
        "{}",
        "[1]",
        "[{}]",
        "[{\"urls\":1}]",
        "[{\"url\":\"stun:x\"}]",
        "[{\"urls\":null}]",
        "[",
        "\"[]\"",
        "[[{\"urls\":\"stun:x\"}]]",
        "[{\"urls\":\"stun:x\"},2]",
    };
    for (size_t i = 0; i < N_ELEMS(ice); i++)
        LOAD_BAD("--ice-servers must be a JSON array of objects with \"urls\"", "--ice-servers",
                 ice[i], "--www", "");

    static const char *const ids[] = {
        "bad id",    "a/b",
        "p\xC3\xA9", "a:b",
        "x%20",      "12345678901234567890123456789012345678901234567890123456789012345", /* 65 */
    };
    for (size_t i = 0; i < N_ELEMS(ids); i++)
        LOAD_BAD("--node-id must be 1-64 characters of [A-Za-z0-9_.-]", "--node-id", ids[i],
                 "--www", "");
}
END_TEST

/* A bad value from the environment is refused too, naming the variable it came from. */
START_TEST(test_bad_environment)
{
    static const struct {
        const char *name, *value, *want;
    } cases[] = {
        {"SWITCHBOARD_MAX_MESSAGE", "garbage",
         "invalid value 'garbage' for SWITCHBOARD_MAX_MESSAGE"},
        {"SWITCHBOARD_MAX_OUTPUT", "-5", "invalid value '-5' for SWITCHBOARD_MAX_OUTPUT"},
        {"SWITCHBOARD_PING_INTERVAL", "0", "invalid value '0' for SWITCHBOARD_PING_INTERVAL"},
        {"SWITCHBOARD_LOG_LEVEL", "loud", "invalid value 'loud' for SWITCHBOARD_LOG_LEVEL"},
        {"SWITCHBOARD_ECHO", "maybe", "invalid value 'maybe' for SWITCHBOARD_ECHO"},
        {"SWITCHBOARD_ICE_SERVERS", "{}", "--ice-servers must be a JSON array"},
        {"SWITCHBOARD_NODE_ID", "bad id", "--node-id must be"},
        {"SWITCHBOARD_WWW", "/nonexistent/switchboard-www", "--www /nonexistent/switchboard-www"},
    };
    for (size_t i = 0; i < N_ELEMS(cases); i++) {
        setenv(cases[i].name, cases[i].value, 1);
        LOAD_BAD(cases[i].want, "--listen", "x:1");
        unsetenv(cases[i].name);
    }
}
END_TEST

/* ---- --help, --version ---------------------------------------------------------------------- */

/* Runs a load with stdout sent to a file; returns what was printed (the caller frees it). */
static char *load_printing(const char *arg, int *rc)
{
    sb_config_t cfg;
    char err[256];
    FILE *tmp = tmpfile();
    ck_assert_ptr_nonnull(tmp);

    fflush(stdout);
    int saved = dup(STDOUT_FILENO);
    ck_assert_int_ge(saved, 0);
    ck_assert_int_ge(dup2(fileno(tmp), STDOUT_FILENO), 0);
    *rc = LOAD(&cfg, err, "--listen", "a:1", arg, "--bogus-after-help");
    fflush(stdout);
    dup2(saved, STDOUT_FILENO);
    close(saved);
    sb_config_free(&cfg); /* what was read before is freed too (LeakSanitizer checks) */

    /* The bytes went through the descriptor, not tmp's buffer: its end is their length. */
    ck_assert_int_eq(fseek(tmp, 0, SEEK_END), 0);
    long n = ftell(tmp);
    ck_assert_int_ge(n, 0);
    char *out = calloc(1, (size_t)n + 1);
    ck_assert_ptr_nonnull(out);
    rewind(tmp);
    ck_assert_uint_eq(fread(out, 1, (size_t)n, tmp), (size_t)n);
    fclose(tmp);
    return out;
}

START_TEST(test_help_and_version)
{
    int rc;
    char *out;

    /* Each returns 1 at once: the bad option after it is never looked at. */
    out = load_printing("--version", &rc);
    ck_assert_int_eq(rc, 1);
    ck_assert_str_eq(out, "switchboard " SB_VERSION "\n");
    free(out);

    static const char *const help[] = {"--help", "-h"};
    for (size_t i = 0; i < N_ELEMS(help); i++) {
        out = load_printing(help[i], &rc);
        ck_assert_int_eq(rc, 1);
        ck_assert_msg(strncmp(out, "Usage: switchboard [OPTION]...\n", 31) == 0, "%s printed %s",
                      help[i], show(out, strlen(out)));
        /* Every option is listed with its variable and its default. */
        ck_assert_ptr_nonnull(strstr(out, "--max-message VALUE"));
        ck_assert_ptr_nonnull(strstr(out, "[env SWITCHBOARD_MAX_MESSAGE, default 65536]"));
        ck_assert_ptr_nonnull(strstr(out, "[env SWITCHBOARD_ECHO, default off]"));
        ck_assert_ptr_nonnull(strstr(out, "--log-level VALUE"));
        ck_assert_ptr_nonnull(strstr(out, "--version"));
        free(out);
    }
}
END_TEST

/* ---- --www ---------------------------------------------------------------------------------- */

START_TEST(test_www)
{
    sb_config_t cfg;
    char err[256], cwd[PATH_MAX], want[PATH_MAX];

    /* "" serves none. */
    ck_assert_int_eq(LOAD(&cfg, err, "--www", ""), 0);
    ck_assert_str_eq(cfg.www, "");
    sb_config_free(&cfg);

    /* A directory is made absolute and resolved. */
    ck_assert_ptr_nonnull(getcwd(cwd, sizeof(cwd)));
    ck_assert_ptr_nonnull(realpath(cwd, want));
    ck_assert_int_eq(LOAD(&cfg, err, "--www", "."), 0);
    ck_assert_str_eq(cfg.www, want);
    sb_config_free(&cfg);
    ck_assert_int_eq(LOAD(&cfg, err, "--www=/tmp/../tmp/"), 0);
    ck_assert_ptr_nonnull(realpath("/tmp", want));
    ck_assert_str_eq(cfg.www, want);
    sb_config_free(&cfg);

    /* A missing directory is an error naming it. */
    ck_assert_int_eq(LOAD(&cfg, err, "--www", "/nonexistent/switchboard-www"), -1);
    ck_assert_str_eq(err, "--www /nonexistent/switchboard-www: no such directory");
    sb_config_free(&cfg);
}
END_TEST

/* A regular file is not a directory to serve: a node that took it would answer 404 for every
 * page instead of saying what is wrong. */
START_TEST(test_www_file_is_not_a_directory)
{
    sb_config_t cfg;
    char err[256], path[] = "/tmp/switchboard-www-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);

    int rc = LOAD(&cfg, err, "--www", path);
    unlink(path);
    sb_config_free(&cfg);
    ck_assert_msg(rc == -1, "--www naming a regular file was accepted (rc %d)", rc);
    ck_assert_msg(strstr(err, "--www") != NULL, "error '%s' does not name --www", err);
}
END_TEST

/* Text after the array is refused, not dropped: '[{"urls":"stun:a"}], [{"urls":"turn:b"}]'
 * must not run with only the first server. */
START_TEST(test_ice_servers_trailing_text_refused)
{
    LOAD_BAD("--ice-servers must be", "--www", "", "--ice-servers",
             "[{\"urls\":\"stun:a\"}], [{\"urls\":\"turn:b\"}]");
    LOAD_BAD("--ice-servers must be", "--www", "", "--ice-servers", "[] junk");
}
END_TEST

/* ---- node IDs ------------------------------------------------------------------------------- */

START_TEST(test_node_id)
{
    sb_config_t a, b;

    LOAD_OK(&a, "--listen", "x:1");
    LOAD_OK(&b, "--listen", "x:1");
    /* Generated: valid, "<host>-<6 hex digits>", and different on every load. */
    sb_config_t *both[] = {&a, &b};
    for (size_t i = 0; i < N_ELEMS(both); i++) {
        const sb_config_t *c = both[i];
        size_t n = strlen(c->node_id);
        ck_assert_msg(sb_peer_id_valid(c->node_id, n), "generated node id '%s'", c->node_id);
        ck_assert_uint_ge(n, 8);
        ck_assert_msg(c->node_id[n - 7] == '-' &&
                          strspn(c->node_id + n - 6, "0123456789abcdef") == 6,
                      "node id '%s' does not end in -<6 hex digits>", c->node_id);
    }
    ck_assert_str_ne(a.node_id, b.node_id);
    sb_config_free(&a);
    sb_config_free(&b);

    /* Given: kept as is, at any valid length. */
    static const char *const ids[] = {
        "n", "node_1.a-B", "1234567890123456789012345678901234567890123456789012345678901234"};
    for (size_t i = 0; i < N_ELEMS(ids); i++) {
        LOAD_OK(&a, "--node-id", ids[i]);
        ck_assert_str_eq(a.node_id, ids[i]);
        sb_config_free(&a);
    }
    /* An empty one means generate. */
    LOAD_OK(&a, "--node-id=");
    ck_assert_msg(sb_peer_id_valid(a.node_id, strlen(a.node_id)), "'%s'", a.node_id);
    sb_config_free(&a);
}
END_TEST

/* ---- proxies -------------------------------------------------------------------------------- */

/* --proxy-protocol is off by default, on by flag or variable, and only with --trust-proxy: a
 * node expecting headers from nobody in particular would take them from anyone. */
START_TEST(test_proxy_protocol)
{
    sb_config_t cfg;

    LOAD_OK(&cfg, "--listen", "x:1");
    ck_assert_int_eq(cfg.proxy_protocol, 0);
    ck_assert_str_eq(cfg.trust_proxy, "");
    sb_config_free(&cfg);

    LOAD_OK(&cfg, "--trust-proxy", "10.0.0.0/8", "--proxy-protocol");
    ck_assert_int_eq(cfg.proxy_protocol, 1);
    ck_assert_str_eq(cfg.trust_proxy, "10.0.0.0/8");
    sb_config_free(&cfg);
    LOAD_OK(&cfg, "--trust-proxy", "10.0.0.1", "--proxy-protocol=no");
    ck_assert_int_eq(cfg.proxy_protocol, 0);
    sb_config_free(&cfg);

    setenv("SWITCHBOARD_PROXY_PROTOCOL", "true", 1);
    setenv("SWITCHBOARD_TRUST_PROXY", "192.0.2.1", 1);
    LOAD_OK(&cfg, "--listen", "x:1");
    ck_assert_int_eq(cfg.proxy_protocol, 1);
    sb_config_free(&cfg);

    LOAD_BAD("--proxy-protocol needs --trust-proxy", "--trust-proxy=");
    unsetenv("SWITCHBOARD_TRUST_PROXY");
    LOAD_BAD("--proxy-protocol needs --trust-proxy", "--www", "");
    setenv("SWITCHBOARD_PROXY_PROTOCOL", "maybe", 1);
    LOAD_BAD("invalid value 'maybe' for SWITCHBOARD_PROXY_PROTOCOL", "--www", "");
    unsetenv("SWITCHBOARD_PROXY_PROTOCOL");
    LOAD_BAD("--proxy-protocol needs --trust-proxy", "--www", "", "--proxy-protocol");
    LOAD_BAD("invalid value 'maybe' for --proxy-protocol", "--proxy-protocol=maybe");
}
END_TEST

/* ---- freeing -------------------------------------------------------------------------------- */

/* Every outcome leaves strings only sb_config_free needs to release (LeakSanitizer checks at
 * exit), and freeing twice is harmless. */
START_TEST(test_free)
{
    sb_config_t cfg;
    char err[256];

    ck_assert_int_eq(LOAD(&cfg, err, "--www", "", "--redis", "redis://h", "--node-id", "n"), 0);
    sb_config_free(&cfg);
    ck_assert_ptr_null(cfg.listen);
    ck_assert_ptr_null(cfg.www);
    ck_assert_ptr_null(cfg.node_id);
    ck_assert_ptr_null(cfg.ice_servers);
    ck_assert_ptr_null(cfg.redis);
    sb_config_free(&cfg);

    /* Refused at each stage: while reading flags, checking www, ice servers, the node ID. */
    ck_assert_int_eq(LOAD(&cfg, err, "--listen", "a:1", "--max-message", "x"), -1);
    sb_config_free(&cfg);
    ck_assert_int_eq(LOAD(&cfg, err, "--listen", "a:1", "--www", "/nonexistent/x"), -1);
    sb_config_free(&cfg);
    ck_assert_int_eq(LOAD(&cfg, err, "--www", ".", "--ice-servers", "{}"), -1);
    sb_config_free(&cfg);
    ck_assert_int_eq(LOAD(&cfg, err, "--www", ".", "--node-id", "bad id"), -1);
    sb_config_free(&cfg);
}
END_TEST

static Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc;

    tc = tcase_create("sources");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_environment_overrides_defaults);
    tcase_add_test(tc, test_flags_override_environment);
    tcase_add_test(tc, test_flag_forms);
    suite_add_tcase(s, tc);

    tc = tcase_create("values");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, test_sizes);
    tcase_add_test(tc, test_times);
    tcase_add_test(tc, test_log_levels);
    tcase_add_test(tc, test_www);
    tcase_add_test(tc, test_node_id);
    tcase_add_test(tc, test_proxy_protocol);
    suite_add_tcase(s, tc);

    tc = tcase_create("refusals");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, test_bad_options);
    tcase_add_test(tc, test_bad_numbers);
    tcase_add_test(tc, test_bad_strings);
    tcase_add_test(tc, test_bad_environment);
    tcase_add_test(tc, test_help_and_version);
    tcase_add_test(tc, test_free);
    tcase_add_test(tc, test_www_file_is_not_a_directory);
    tcase_add_test(tc, test_ice_servers_trailing_text_refused);
    suite_add_tcase(s, tc);

    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(config_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
