/* vigil.conf: defaults, every key, every error (with its line, and the
 * caller's struct untouched), quoting, comments, CRLF, load(), and the
 * dump -> parse round trip. */
#include <check.h>

#include "check_main.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "daemon/config.h"

#define HOUR_MS ((ha_ms)3600 * 1000)
#define DAY_MS (24 * HOUR_MS)

/* Both static: a struct is several KiB. */
static struct vigil_config cfg, sentinel;

static void fill_sentinel(void)
{
    memset(&sentinel, 0x5a, sizeof sentinel);
    cfg = sentinel;
}

static int parse(const char *text, char *err, size_t errlen)
{
    return vigil_config_parse(text, strlen(text), "vigil.conf", &cfg, err, errlen);
}

START_TEST(defaults)
{
    vigil_config_default(&cfg);
    ck_assert_str_eq(cfg.name, "");
    ck_assert_str_eq(cfg.address, "");
    ck_assert_str_eq(cfg.state_dir, "/var/lib/vigil");
    ck_assert_str_eq(cfg.corosync_conf, "/etc/corosync/corosync.conf");
    ck_assert_str_eq(cfg.corosync_authkey, "/etc/corosync/authkey");
    ck_assert_str_eq(cfg.corosync_start, "corosync");
    ck_assert_str_eq(cfg.corosync_reload, "corosync-cfgtool -R");
    ck_assert_int_eq(cfg.join_port, 7405);
    ck_assert_int_eq(cfg.join_token_ttl, HOUR_MS);
    ck_assert_str_eq(cfg.log_file, "");
    ck_assert_int_eq(cfg.log_level, LOG_INFO);
    ck_assert(!cfg.syslog);
    ck_assert_str_eq(cfg.heartbeat_disk, "");
    ck_assert_int_eq(cfg.heartbeat_disk_sector_size, 512);
    ck_assert(!cfg.self_fence_reboot);
    ck_assert_str_eq(cfg.watchdog_device, "");
    ck_assert_int_eq(cfg.watchdog_timeout, 10);
    ck_assert_str_eq(cfg.ipc_group, "vigil");
    ck_assert_str_eq(cfg.libvirt_uri, "qemu:///system");
    ck_assert_str_eq(cfg.libvirt_peer_uri, "qemu+tcp://%s/system");
    ck_assert(cfg.from_defaults);

    /* an empty or comment-only file is the defaults, read from a file */
    struct vigil_config d;
    vigil_config_default(&d);
    char err[256];
    const char *empty[] = {"", "\n", "# nothing\n\n   \t\n", "\r\n"};
    for (size_t i = 0; i < sizeof empty / sizeof empty[0]; i++) {
        fill_sentinel();
        ck_assert_int_eq(parse(empty[i], err, sizeof err), 0);
        ck_assert(vigil_config_equal(&cfg, &d));
        ck_assert(!cfg.from_defaults);
    }
}
END_TEST

static const char full[] = "# Every key, with quoting, comments and odd spacing.\n"
                           "name = h1.example-pool_2\n"
                           "address = 10.99.0.1\n"
                           "state_dir = /srv/vigil\n"
                           "corosync_conf=\"/etc/corosync/corosync.conf\"   # quoted, no spaces around '='\n"
                           "corosync_authkey = /etc/corosync/key\n"
                           "corosync_start = \"systemctl start corosync\"\n"
                           "corosync_reload = sh -c \"corosync-cfgtool -R && logger \\\"reloaded\\\"\"\n"
                           "\tjoin_port\t=\t17405\n"
                           "join_token_ttl = 30d\n"
                           "log_file = \"/var/log/vigil/vigild #1.log\"\n"
                           "log_level = debug\n"
                           "syslog = on\n"
                           "heartbeat_disk = /dev/mapper/vigil-hb\n"
                           "heartbeat_disk_sector_size = 4096\n"
                           "self_fence_reboot = true\n"
                           "watchdog_device = /dev/watchdog\n"
                           "watchdog_timeout = 2m\n"
                           "ipc_group = vigil-admins\n";

START_TEST(full_file)
{
    char err[256] = "";
    fill_sentinel();
    ck_assert_int_eq(parse(full, err, sizeof err), 0);
    ck_assert_str_eq(cfg.name, "h1.example-pool_2");
    ck_assert_str_eq(cfg.address, "10.99.0.1");
    ck_assert_str_eq(cfg.state_dir, "/srv/vigil");
    ck_assert_str_eq(cfg.corosync_conf, "/etc/corosync/corosync.conf");
    ck_assert_str_eq(cfg.corosync_authkey, "/etc/corosync/key");
    ck_assert_str_eq(cfg.corosync_start, "systemctl start corosync");
    /* bare values are literal: their quotes and backslashes stay */
    ck_assert_str_eq(cfg.corosync_reload, "sh -c \"corosync-cfgtool -R && logger \\\"reloaded\\\"\"");
    ck_assert_int_eq(cfg.join_port, 17405);
    ck_assert_int_eq(cfg.join_token_ttl, 30 * DAY_MS);
    ck_assert_str_eq(cfg.log_file, "/var/log/vigil/vigild #1.log");
    ck_assert_int_eq(cfg.log_level, LOG_DEBUG);
    ck_assert(cfg.syslog);
    ck_assert_str_eq(cfg.heartbeat_disk, "/dev/mapper/vigil-hb");
    ck_assert_int_eq(cfg.heartbeat_disk_sector_size, 4096);
    ck_assert(cfg.self_fence_reboot);
    ck_assert_str_eq(cfg.watchdog_device, "/dev/watchdog");
    ck_assert_int_eq(cfg.watchdog_timeout, 120);
    ck_assert_str_eq(cfg.ipc_group, "vigil-admins");
    ck_assert(!cfg.from_defaults);
}
END_TEST

/* Each refused input, with its exact message; the struct stays untouched. */
static const struct {
    const char *text, *msg;
} bad[] = {
    {"join_port = 1\ntokn_ms = 3\n", "vigil.conf:2: unknown key 'tokn_ms'"},
    {"join_prot = 1\n", "vigil.conf:1: unknown key 'join_prot' (did you mean 'join_port'?)"},
    {"\n\n\nsylog = yes\n", "vigil.conf:4: unknown key 'sylog' (did you mean 'syslog'?)"},
    {"adress = ::1\n", "vigil.conf:1: unknown key 'adress' (did you mean 'address'?)"},
    {"Name = h1\n", "vigil.conf:1: unknown key 'Name' (did you mean 'name'?)"},
    {"colour = red\n", "vigil.conf:1: unknown key 'colour'"},
    {"name = a\njoin_port = 1\n\njoin_port = 2\n", "vigil.conf:4: duplicate key 'join_port' (first set on line 2)"},
    {"name = a\nsyslog yes\n", "vigil.conf:2: expected 'key = value', found no '='"},
    {"syslog # = yes\n", "vigil.conf:1: expected 'key = value', found no '='"},
    {"  = 3\n", "vigil.conf:1: missing key before '='"},
    {"address =\n", "vigil.conf:1: empty value for 'address' (leave the key out to use the default)"},
    {"address = \"\"\n", "vigil.conf:1: empty value for 'address' (leave the key out to use the default)"},
    {"address =   # later\n", "vigil.conf:1: empty value for 'address' (leave the key out to use the default)"},
    {"name = bad name\n", "vigil.conf:1: name: 'bad name' is not a host name (1..63 of A-Z a-z 0-9 . _ -)"},
    {"name = h\xc3\xa9\n", "vigil.conf:1: name: 'h\xc3\xa9' is not a host name (1..63 of A-Z a-z 0-9 . _ -)"},
    {"name = 0123456789012345678901234567890123456789012345678901234567890123\n",
     "vigil.conf:1: name: '0123456789012345678901234567890123456789012345678901234567890123' is not a host name "
     "(1..63 of A-Z a-z 0-9 . _ -)"},
    {"address = 10.0.0.256\n", "vigil.conf:1: address: '10.0.0.256' is not an IPv4 or IPv6 address"},
    {"address = localhost\n", "vigil.conf:1: address: 'localhost' is not an IPv4 or IPv6 address"},
    {"address = fe80::1%eth0\n", "vigil.conf:1: address: 'fe80::1%eth0' is not an IPv4 or IPv6 address"},
    {"state_dir = var/lib/vigil\n", "vigil.conf:1: state_dir: 'var/lib/vigil' is not an absolute path"},
    {"corosync_conf = ~/c.conf\n", "vigil.conf:1: corosync_conf: '~/c.conf' is not an absolute path"},
    {"log_file = vigild.log\n", "vigil.conf:1: log_file: 'vigild.log' is not an absolute path"},
    {"heartbeat_disk = sdb\n", "vigil.conf:1: heartbeat_disk: 'sdb' is not an absolute path"},
    {"corosync_start = \"\"\n",
     "vigil.conf:1: empty value for 'corosync_start' (leave the key out to use the default)"},
    {"join_port = 0\n", "vigil.conf:1: join_port: '0' is not a port number (1..65535)"},
    {"join_port = 65536\n", "vigil.conf:1: join_port: '65536' is not a port number (1..65535)"},
    {"join_port = -1\n", "vigil.conf:1: join_port: '-1' is not a port number (1..65535)"},
    {"join_port = 7405x\n", "vigil.conf:1: join_port: '7405x' is not a port number (1..65535)"},
    {"join_token_ttl = 59s\n", "vigil.conf:1: join_token_ttl: '59s' is outside 1m..30d"},
    {"join_token_ttl = 31d\n", "vigil.conf:1: join_token_ttl: '31d' is outside 1m..30d"},
    {"join_token_ttl = 0d\n", "vigil.conf:1: join_token_ttl: '0d' is outside 1m..30d"},
    {"join_token_ttl = 1w\n",
     "vigil.conf:1: join_token_ttl: '1w' is not a duration (e.g. 30m, 12h, 7d; more than a week in whole days)"},
    {"join_token_ttl = 720h\n",
     "vigil.conf:1: join_token_ttl: '720h' is not a duration (e.g. 30m, 12h, 7d; more than a week in whole days)"},
    {"join_token_ttl = 1.5d\n", "vigil.conf:1: join_token_ttl: '1.5d' is not a duration (e.g. 30m, 12h, 7d)"},
    {"log_level = verbose\n",
     "vigil.conf:1: log_level: 'verbose' is not one of error, warning, notice, info, debug"},
    {"syslog = maybe\n", "vigil.conf:1: syslog: 'maybe' is not yes or no (or true/false, on/off, 1/0)"},
    {"heartbeat_disk_sector_size = 1024\n", "vigil.conf:1: heartbeat_disk_sector_size: '1024' is not 512 or 4096"},
    {"watchdog_timeout = 1500ms\n",
     "vigil.conf:1: watchdog_timeout: '1500ms' is not a whole number of seconds in 1s..1h (e.g. 10 or 10s)"},
    {"watchdog_timeout = 2h\n", "vigil.conf:1: watchdog_timeout: '2h' is not a whole number of seconds in 1s..1h (e.g. 10 or 10s)"},
    {"watchdog_device = watchdog\n", "vigil.conf:1: watchdog_device: 'watchdog' is not an absolute path"},
    {"self_fence_reboot = 2\n", "vigil.conf:1: self_fence_reboot: '2' is not yes or no (or true/false, on/off, 1/0)"},
    {"ipc_group = -wheel\n",
     "vigil.conf:1: ipc_group: '-wheel' is not a group name (1..32 of A-Z a-z 0-9 . _ -, not starting with -)"},
    {"ipc_group = abcdefghijklmnopqrstuvwxyz0123456\n",
     "vigil.conf:1: ipc_group: 'abcdefghijklmnopqrstuvwxyz0123456' is not a group name (1..32 of A-Z a-z 0-9 . _ -, "
     "not starting with -)"},
    {"libvirt_uri = qemu\n", "vigil.conf:1: libvirt_uri: 'qemu' is not a libvirt URI (e.g. qemu:///system)"},
    {"libvirt_uri = \"qemu:///sys tem\"\n",
     "vigil.conf:1: libvirt_uri: 'qemu:///sys tem' is not a libvirt URI (e.g. qemu:///system)"},
    {"libvirt_uri = qemu+tcp://%s/system\n", "vigil.conf:1: libvirt_uri: 'qemu+tcp://%s/system' holds a %"},
    {"libvirt_peer_uri = qemu+tcp://10.0.0.1/system\n",
     "vigil.conf:1: libvirt_peer_uri: 'qemu+tcp://10.0.0.1/system' must hold exactly one %s, where a host's address "
     "goes (e.g. qemu+tcp://%s/system)"},
    {"libvirt_peer_uri = qemu+tcp://%s/%s\n",
     "vigil.conf:1: libvirt_peer_uri: 'qemu+tcp://%s/%s' must hold exactly one %s, where a host's address goes (e.g. "
     "qemu+tcp://%s/system)"},
    {"log_file = \"/var/log/x\n", "vigil.conf:1: log_file: no closing '\"'"},
    {"log_file = \"/var/log/x\\\"\n", "vigil.conf:1: log_file: no closing '\"'"},
    {"log_file = \"/var/log\\n\"\n", "vigil.conf:1: log_file: unknown escape in a quoted value (only \\\" and \\\\)"},
    {"log_file = \"/var/log/x\" y\n", "vigil.conf:1: log_file: unexpected text after the closing '\"'"},
    {"log_file = \"/var/log/x\"# no space\n", "vigil.conf:1: log_file: unexpected text after the closing '\"'"},
    {"name = a\n\x01name = b\n", "vigil.conf:2: control character 0x01"},
    {"name = a\rname = b\n", "vigil.conf:1: control character 0x0d"},
    {"# caf\xe9\n", "vigil.conf:1: not valid UTF-8"},
    {"# \xc0\xaf overlong\n", "vigil.conf:1: not valid UTF-8"},
    {"# \xed\xa0\x80 surrogate\n", "vigil.conf:1: not valid UTF-8"},
    {"# \xe2\x82 cut\n", "vigil.conf:1: not valid UTF-8"},
};

START_TEST(errors)
{
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char err[512] = "";
        fill_sentinel();
        ck_assert_msg(parse(bad[i].text, err, sizeof err) == -EINVAL, "accepted: %s", bad[i].text);
        ck_assert_str_eq(err, bad[i].msg);
        ck_assert_msg(!memcmp(&cfg, &sentinel, sizeof cfg), "changed the struct: %s", bad[i].text);
    }
}
END_TEST

/* An error on the last line still leaves everything before it unused. */
START_TEST(error_after_valid_lines)
{
    char err[256];
    fill_sentinel();
    ck_assert_int_eq(parse("name = h1\naddress = 10.0.0.1\njoin_port = 1\n\n# ok so far\nsyslog = perhaps\n", err,
                           sizeof err),
                     -EINVAL);
    ck_assert_str_eq(err, "vigil.conf:6: syslog: 'perhaps' is not yes or no (or true/false, on/off, 1/0)");
    ck_assert(!memcmp(&cfg, &sentinel, sizeof cfg));
}
END_TEST

START_TEST(nul_byte)
{
    static const char text[] = "name = a\nname = b\0\n";
    char err[256];
    fill_sentinel();
    ck_assert_int_eq(vigil_config_parse(text, sizeof text - 1, "vigil.conf", &cfg, err, sizeof err), -EINVAL);
    ck_assert_str_eq(err, "vigil.conf:2: NUL byte (not a text file)");
    ck_assert(!memcmp(&cfg, &sentinel, sizeof cfg));
}
END_TEST

/* At most 4096 bytes a line, without its line ending. */
static char *line_of(size_t n, const char *ending)
{
    char *t = malloc(n + 64);
    ck_assert_ptr_nonnull(t);
    strcpy(t, "name = a\n#");
    memset(t + 10, 'x', n - 1);
    strcpy(t + 9 + n, ending);
    strcat(t, "join_port = 1\n");
    return t;
}

START_TEST(long_lines)
{
    char err[256];
    char *ok = line_of(4096, "\r\n");
    fill_sentinel();
    ck_assert_int_eq(parse(ok, err, sizeof err), 0);
    ck_assert_int_eq(cfg.join_port, 1);
    char *too_long = line_of(4097, "\n");
    fill_sentinel();
    ck_assert_int_eq(parse(too_long, err, sizeof err), -EINVAL);
    ck_assert_str_eq(err, "vigil.conf:2: line longer than 4096 bytes");
    ck_assert(!memcmp(&cfg, &sentinel, sizeof cfg));
    free(ok);
    free(too_long);

    /* values: at most 1023 bytes, quoted or not */
    char v[1100];
    for (int quoted = 0; quoted < 2; quoted++)
        for (size_t n = 1023; n <= 1024; n++) {
            char text[1200];
            memset(v, 'a', n);
            v[0] = '/';
            v[n] = 0;
            snprintf(text, sizeof text, quoted ? "state_dir = \"%s\"\n" : "state_dir = %s\n", v);
            fill_sentinel();
            int r = parse(text, err, sizeof err);
            if (n == 1023) {
                ck_assert_int_eq(r, 0);
                ck_assert_str_eq(cfg.state_dir, v);
            } else {
                ck_assert_int_eq(r, -EINVAL);
                ck_assert_str_eq(err, "vigil.conf:1: state_dir: value longer than 1023 bytes");
            }
        }
}
END_TEST

START_TEST(quoting)
{
    char err[256];
    fill_sentinel();
    ck_assert_int_eq(parse("log_file = \"/var/log/a b#c.log\"  # a comment\n"
                           "state_dir = \"/x\\\"y\\\\z\"\n"
                           "corosync_start = \"  padded  \"\n"
                           "corosync_reload = \"#\"\n"
                           "ipc_group = \"wheel\"\n"
                           "log_level = \"WARNING\"\n",
                           err, sizeof err),
                     0);
    ck_assert_str_eq(cfg.log_file, "/var/log/a b#c.log");
    ck_assert_str_eq(cfg.state_dir, "/x\"y\\z");
    ck_assert_str_eq(cfg.corosync_start, "  padded  ");
    ck_assert_str_eq(cfg.corosync_reload, "#");
    ck_assert_str_eq(cfg.ipc_group, "wheel");
    ck_assert_int_eq(cfg.log_level, LOG_WARNING);
}
END_TEST

START_TEST(comments)
{
    char err[256];
    fill_sentinel();
    ck_assert_int_eq(parse("# whole line\n"
                           "   # indented\n"
                           "\t#tab\n"
                           "log_file = /var/log/a#b.log\n"     /* no space before '#': part of the value */
                           "state_dir = /srv/vigil # after a space\n"
                           "corosync_start = corosync -f\t# after a tab\n"
                           "join_port = 99#9\n",
                           err, sizeof err),
                     -EINVAL); /* 99#9 is not a port: the '#' is not a comment there */
    ck_assert_str_eq(err, "vigil.conf:7: join_port: '99#9' is not a port number (1..65535)");
    fill_sentinel();
    ck_assert_int_eq(parse("# whole line\n"
                           "   # indented\n"
                           "log_file = /var/log/a#b.log\n"
                           "state_dir = /srv/vigil # after a space\n"
                           "corosync_start = corosync -f\t# after a tab\n"
                           "join_port = 99  #\n",
                           err, sizeof err),
                     0);
    ck_assert_str_eq(cfg.log_file, "/var/log/a#b.log");
    ck_assert_str_eq(cfg.state_dir, "/srv/vigil");
    ck_assert_str_eq(cfg.corosync_start, "corosync -f");
    ck_assert_int_eq(cfg.join_port, 99);
}
END_TEST

START_TEST(values)
{
    char err[256];
    static const struct {
        const char *text;
        ha_ms ttl;
    } ttls[] = {{"1m", 60000},        {"60", 60000},         {"90m", 90 * 60000}, {"12h", 12 * HOUR_MS},
                {"168h", 7 * DAY_MS}, {"1d", DAY_MS},        {"30d", 30 * DAY_MS}, {"60000ms", 60000},
                {"007d", 7 * DAY_MS}, {"61s", 61000}};
    for (size_t i = 0; i < sizeof ttls / sizeof ttls[0]; i++) {
        char text[64];
        snprintf(text, sizeof text, "join_token_ttl = %s\n", ttls[i].text);
        fill_sentinel();
        ck_assert_msg(parse(text, err, sizeof err) == 0, "%s: %s", text, err);
        ck_assert_int_eq(cfg.join_token_ttl, ttls[i].ttl);
    }
    static const struct {
        const char *word;
        bool value;
    } bools[] = {{"yes", true}, {"no", false}, {"true", true}, {"false", false}, {"on", true},
                 {"off", false}, {"1", true},  {"0", false},    {"YES", true},   {"Off", false}};
    for (size_t i = 0; i < sizeof bools / sizeof bools[0]; i++) {
        char text[64];
        snprintf(text, sizeof text, "syslog = %s\nself_fence_reboot = %s\n", bools[i].word, bools[i].word);
        fill_sentinel();
        ck_assert_int_eq(parse(text, err, sizeof err), 0);
        ck_assert(cfg.syslog == bools[i].value && cfg.self_fence_reboot == bools[i].value);
    }
    static const struct {
        const char *word;
        int prio;
    } levels[] = {{"error", LOG_ERR}, {"warning", LOG_WARNING}, {"notice", LOG_NOTICE}, {"info", LOG_INFO},
                  {"debug", LOG_DEBUG}};
    for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++) {
        char text[64];
        snprintf(text, sizeof text, "log_level = %s\n", levels[i].word);
        fill_sentinel();
        ck_assert_int_eq(parse(text, err, sizeof err), 0);
        ck_assert_int_eq(cfg.log_level, levels[i].prio);
    }
    const char *addrs[] = {"10.99.0.1", "::1", "2001:db8::7", "fe80::1", "::ffff:10.0.0.1", "0.0.0.0"};
    for (size_t i = 0; i < sizeof addrs / sizeof addrs[0]; i++) {
        char text[64];
        snprintf(text, sizeof text, "address = %s\n", addrs[i]);
        fill_sentinel();
        ck_assert_int_eq(parse(text, err, sizeof err), 0);
        ck_assert_str_eq(cfg.address, addrs[i]);
    }
    fill_sentinel();
    ck_assert_int_eq(parse("join_port = 65535\nname = 012345678901234567890123456789012345678901234567890123456789012\n",
                           err, sizeof err),
                     0);
    ck_assert_int_eq(cfg.join_port, 65535);
    ck_assert_int_eq(strlen(cfg.name), 63);
}
END_TEST

START_TEST(crlf_and_bom)
{
    char err[256];
    fill_sentinel();
    ck_assert_int_eq(parse("\xef\xbb\xbfname = h2\r\naddress = 2001:db8::7\r\n# CRLF\r\n\r\n"
                           "log_file = \"/var/log/v.log\"\r\nsyslog = yes\r",
                           err, sizeof err),
                     0);
    ck_assert_str_eq(cfg.name, "h2");
    ck_assert_str_eq(cfg.address, "2001:db8::7");
    ck_assert_str_eq(cfg.log_file, "/var/log/v.log");
    ck_assert(cfg.syslog);
    /* line numbers count CRLF lines the same */
    fill_sentinel();
    ck_assert_int_eq(parse("name = h2\r\n\r\nbogus = 1\r\n", err, sizeof err), -EINVAL);
    ck_assert_str_eq(err, "vigil.conf:3: unknown key 'bogus'");
}
END_TEST

static void round_trip(const struct vigil_config *c)
{
    static char text[VIGIL_CONFIG_DUMP_MAX], again[VIGIL_CONFIG_DUMP_MAX];
    static struct vigil_config back;
    char err[256] = "";
    int n = vigil_config_dump(c, text, sizeof text);
    ck_assert_int_gt(n, 0);
    ck_assert_int_eq((size_t)n, strlen(text));
    ck_assert_msg(vigil_config_parse(text, (size_t)n, "dump", &back, err, sizeof err) == 0, "%s\n%s", err, text);
    ck_assert_msg(vigil_config_equal(c, &back), "differs after a round trip:\n%s", text);
    ck_assert_int_eq(vigil_config_dump(&back, again, sizeof again), n);
    ck_assert_str_eq(again, text);
}

START_TEST(dump_round_trip)
{
    char err[256];
    struct vigil_config d;
    vigil_config_default(&d);
    round_trip(&d);
    fill_sentinel();
    ck_assert_int_eq(parse(full, err, sizeof err), 0);
    round_trip(&cfg);

    /* the canonical text itself */
    static char text[VIGIL_CONFIG_DUMP_MAX];
    ck_assert_int_gt(vigil_config_dump(&d, text, sizeof text), 0);
    ck_assert_str_eq(text, "# name is not set\n"
                           "# address is not set\n"
                           "state_dir = /var/lib/vigil\n"
                           "corosync_conf = /etc/corosync/corosync.conf\n"
                           "corosync_authkey = /etc/corosync/authkey\n"
                           "corosync_start = corosync\n"
                           "corosync_reload = \"corosync-cfgtool -R\"\n"
                       "corosync_stop = \"corosync-cfgtool -H --force\"\n"
                           "join_port = 7405\n"
                           "join_token_ttl = 1h\n"
                           "# log_file is not set\n"
                           "log_level = info\n"
                           "syslog = no\n"
                           "# heartbeat_disk is not set\n"
                           "heartbeat_disk_sector_size = 512\n"
                           "self_fence_reboot = no\n"
                           "# watchdog_device is not set\n"
                           "watchdog_timeout = 10s\n"
                           "ipc_group = vigil\n"
                           "libvirt_uri = qemu:///system\n"
                           "libvirt_peer_uri = qemu+tcp://%s/system\n");

    const char *ttls[] = {"61s", "90m", "36h", "168h", "8d", "30d", "60001ms"};
    for (size_t i = 0; i < sizeof ttls / sizeof ttls[0]; i++) {
        char line[64];
        snprintf(line, sizeof line, "join_token_ttl = %s\n", ttls[i]);
        ck_assert_int_eq(parse(line, err, sizeof err), 0);
        round_trip(&cfg);
    }
    /* values that need quoting, and bare ones holding quote characters */
    ck_assert_int_eq(parse("state_dir = \"/a \\\"b\\\" \\\\c #d\"\n"
                           "corosync_start = \" lead\"\n"
                           "corosync_reload = trail\\ \"x\"\n"
                           "log_file = /tab\there\n",
                           err, sizeof err),
                     0);
    round_trip(&cfg);
    /* the longest values, every byte needing an escape */
    char v[1024];
    memset(v, '"', sizeof v - 1);
    v[0] = '/';
    v[sizeof v - 1] = 0;
    snprintf(d.state_dir, sizeof d.state_dir, "%s", v);
    snprintf(d.corosync_start, sizeof d.corosync_start, "%s", v);
    round_trip(&d);
}
END_TEST

START_TEST(dump_small_buffer)
{
    struct vigil_config d;
    vigil_config_default(&d);
    char small[64];
    memset(small, 'x', sizeof small);
    ck_assert_int_eq(vigil_config_dump(&d, small, sizeof small), -ENOSPC);
    ck_assert_str_eq(small, "");
    ck_assert_int_eq(vigil_config_dump(&d, NULL, 0), -ENOSPC);
}
END_TEST

START_TEST(small_error_buffer)
{
    char err[12];
    memset(err, 'x', sizeof err);
    fill_sentinel();
    ck_assert_int_eq(vigil_config_parse("bogus = 1", 9, "vigil.conf", &cfg, err, sizeof err), -EINVAL);
    ck_assert_str_eq(err, "vigil.conf:");
    ck_assert_int_eq(vigil_config_parse("bogus = 1", 9, "vigil.conf", &cfg, NULL, 0), -EINVAL);
    ck_assert(!memcmp(&cfg, &sentinel, sizeof cfg));
}
END_TEST

/* docs/vigil.conf.example parses as shipped, and with every key uncommented */
START_TEST(example_file)
{
    const char *top = getenv("top_srcdir");
    char path[512], err[512];
    snprintf(path, sizeof path, "%s/docs/vigil.conf.example", top ? top : ".");
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    static char text[16384], uncommented[16384];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = 0;
    fill_sentinel();
    ck_assert_msg(vigil_config_parse(text, n, path, &cfg, err, sizeof err) == 0, "%s", err);
    struct vigil_config d;
    vigil_config_default(&d);
    ck_assert(vigil_config_equal(&cfg, &d)); /* the commented values are the defaults */

    size_t u = 0;
    for (const char *l = text; *l;) {
        const char *nl = strchr(l, '\n');
        size_t len = nl ? (size_t)(nl - l) + 1 : strlen(l);
        if (l[0] == '#' && l[1] >= 'a' && l[1] <= 'z')
            l++, len--; /* "#key = value" */
        memcpy(uncommented + u, l, len);
        u += len;
        l += len;
    }
    uncommented[u] = 0;
    fill_sentinel();
    ck_assert_msg(vigil_config_parse(uncommented, u, path, &cfg, err, sizeof err) == 0, "%s", err);
    static char dump[VIGIL_CONFIG_DUMP_MAX];
    ck_assert_int_gt(vigil_config_dump(&cfg, dump, sizeof dump), 0);
    ck_assert_msg(!strstr(dump, "not set"), "the example leaves a key out:\n%s", dump);
}
END_TEST

/* ---------------------------------------------------------------- load */

static char tmpdir[64];

static void make_tmpdir(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_config.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void write_file(const char *path, const char *text, mode_t mode)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
    ck_assert_int_eq(chmod(path, mode), 0);
}

START_TEST(load_missing)
{
    char err[256], path[128];
    make_tmpdir();
    snprintf(path, sizeof path, "%s/none.conf", tmpdir);
    fill_sentinel();
    ck_assert_int_eq(vigil_config_load(path, &cfg, err, sizeof err), -ENOENT);
    char want[256];
    snprintf(want, sizeof want, "%s: cannot open: No such file or directory", path);
    ck_assert_str_eq(err, want);
    ck_assert(!memcmp(&cfg, &sentinel, sizeof cfg));

    ck_assert_int_eq(vigil_config_load(tmpdir, &cfg, err, sizeof err), -EISDIR);
    ck_assert(!memcmp(&cfg, &sentinel, sizeof cfg));
    rmdir(tmpdir);

    /* the default path may be missing: defaults and the hostname */
    if (access(VIGIL_CONFIG_PATH, F_OK) < 0) {
        char host[256] = "";
        gethostname(host, sizeof host);
        ck_assert_int_eq(vigil_config_load(NULL, &cfg, err, sizeof err), 0);
        ck_assert(cfg.from_defaults);
        ck_assert_str_eq(cfg.name, host);
        ck_assert_int_eq(cfg.join_port, 7405);
    }
}
END_TEST

START_TEST(load_file)
{
    char err[256], path[128], host[256] = "";
    gethostname(host, sizeof host);
    make_tmpdir();
    snprintf(path, sizeof path, "%s/vigil.conf", tmpdir);

    write_file(path, "address = 10.99.0.2\njoin_port = 7406\n", 0640);
    fill_sentinel();
    ck_assert_msg(vigil_config_load(path, &cfg, err, sizeof err) == 0, "%s", err);
    ck_assert(!cfg.from_defaults);
    ck_assert_str_eq(cfg.name, host); /* not in the file: the hostname */
    ck_assert_str_eq(cfg.address, "10.99.0.2");
    ck_assert_int_eq(cfg.join_port, 7406);

    write_file(path, "name = h7\n", 0600);
    ck_assert_int_eq(vigil_config_load(path, &cfg, err, sizeof err), 0);
    ck_assert_str_eq(cfg.name, "h7");

    /* errors name the file as given */
    write_file(path, "name = h7\njoin_port = x\n", 0600);
    fill_sentinel();
    ck_assert_int_eq(vigil_config_load(path, &cfg, err, sizeof err), -EINVAL);
    char want[256];
    snprintf(want, sizeof want, "%s:2: join_port: 'x' is not a port number (1..65535)", path);
    ck_assert_str_eq(err, want);
    ck_assert(!memcmp(&cfg, &sentinel, sizeof cfg));

    /* anyone could make vigild run their command: refused */
    write_file(path, "name = h7\n", 0666);
    ck_assert_int_eq(vigil_config_load(path, &cfg, err, sizeof err), -EPERM);
    ck_assert_ptr_nonnull(strstr(err, "writable by every user"));
    ck_assert(!memcmp(&cfg, &sentinel, sizeof cfg));

    unlink(path);
    rmdir(tmpdir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("config");
    TCase *t = tcase_create("config");
    tcase_add_test(t, defaults);
    tcase_add_test(t, full_file);
    tcase_add_test(t, errors);
    tcase_add_test(t, error_after_valid_lines);
    tcase_add_test(t, nul_byte);
    tcase_add_test(t, long_lines);
    tcase_add_test(t, quoting);
    tcase_add_test(t, comments);
    tcase_add_test(t, values);
    tcase_add_test(t, crlf_and_bom);
    tcase_add_test(t, dump_round_trip);
    tcase_add_test(t, dump_small_buffer);
    tcase_add_test(t, small_error_buffer);
    tcase_add_test(t, example_file);
    tcase_add_test(t, load_missing);
    tcase_add_test(t, load_file);
    suite_add_tcase(s, t);
    return vigil_run_suite(s);
}
