/* cli_net.c: parsing --net values (tap=NAME or user, with mac=, hostfwd=, restrict=). */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "util.h"

int parse_mac(const char *s, uint8_t mac[6])
{
    unsigned v[6];
    char end;
    if (strlen(s) != 17 ||
        sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &end) != 6)
        return -EINVAL;
    for (int i = 0; i < 6; i++) {
        if (s[3 * i + 2] != ':' && i < 5)
            return -EINVAL;
        mac[i] = (uint8_t)v[i];
    }
    if (mac[0] & 1)
        return -EINVAL; /* multicast: not a station address */
    return 0;
}

/* A decimal port 1-65535. */
static int parse_port(const char *s, uint16_t *port)
{
    char *end;
    if (*s < '0' || *s > '9')
        return -EINVAL;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *end || v == 0 || v > 65535)
        return -EINVAL;
    *port = (uint16_t)v;
    return 0;
}

/* "[ADDR]:PORT" in place: *addr is NULL when empty; ADDR must be a dotted IPv4 address. */
static int parse_endpoint(char *s, const char **addr, uint16_t *port)
{
    char *colon = strrchr(s, ':');
    if (!colon)
        return -EINVAL;
    *colon = '\0';
    struct in_addr ia;
    if (s[0] && inet_pton(AF_INET, s, &ia) != 1)
        return -EINVAL;
    *addr = s[0] ? s : NULL;
    return parse_port(colon + 1, port);
}

int parse_hostfwd(char *s, struct kiln_hostfwd *h)
{
    memset(h, 0, sizeof(*h));
    if (strncmp(s, "tcp:", 4) == 0) {
        s += 4;
    } else if (strncmp(s, "udp:", 4) == 0) {
        h->udp = true;
        s += 4;
    }
    char *dash = strchr(s, '-');
    if (!dash)
        return -EINVAL;
    *dash = '\0';
    if (parse_endpoint(s, &h->host_addr, &h->host_port) < 0)
        return -EINVAL;
    return parse_endpoint(dash + 1, &h->guest_addr, &h->guest_port);
}

static int net_fail(char *errmsg, const char *orig, const char *why)
{
    return kiln_fail(errmsg, EINVAL, "--net '%s': %s", orig, why);
}

/* The first field says the kind: "user" or "tap=NAME". */
int cli_net_kind(char *field, struct kiln_net *n, const char *orig, char *errmsg)
{
    if (strcmp(field, "user") == 0) {
        n->kind = KILN_NET_USER;
        return 0;
    }
    if (strncmp(field, "tap=", 4) == 0 && field[4]) {
        n->kind = KILN_NET_TAP;
        n->tap_name = field + 4;
        return 0;
    }
    return net_fail(errmsg, orig, "expected user or tap=NAME first");
}

int cli_net_field(char *field, struct kiln_net *n, const char *orig, char *errmsg)
{
    if (strncmp(field, "mac=", 4) == 0) {
        if (parse_mac(field + 4, n->mac) < 0)
            return net_fail(errmsg, orig,
                            "mac must be six hex bytes like 02:00:00:00:00:01, "
                            "not multicast");
        n->mac_set = true;
        return 0;
    }
    bool user = n->kind == KILN_NET_USER;
    if (strncmp(field, "hostfwd=", 8) == 0 && user) {
        if (n->nhostfwd == KILN_MAX_HOSTFWD)
            return net_fail(errmsg, orig, "too many hostfwd (at most 16)");
        if (parse_hostfwd(field + 8, &n->hostfwd[n->nhostfwd]) < 0)
            return net_fail(errmsg, orig,
                            "hostfwd must be [tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT "
                            "with IPv4 addresses and ports 1-65535");
        n->nhostfwd++;
        return 0;
    }
    if (strncmp(field, "restrict=", 9) == 0 && user) {
        const char *v = field + 9;
        if (strcmp(v, "on") != 0 && strcmp(v, "off") != 0)
            return net_fail(errmsg, orig, "restrict must be on or off");
        n->restricted = strcmp(v, "on") == 0;
        return 0;
    }
    char why[96];
    snprintf(why, sizeof(why), "unknown option '%.32s' (expected mac=%s)", field,
             user ? ", hostfwd=, restrict=" : "; hostfwd is for user");
    return net_fail(errmsg, orig, why);
}

int parse_net(char *s, struct kiln_net *n, char *errmsg)
{
    char orig[160];
    snprintf(orig, sizeof(orig), "%s", s);
    memset(n, 0, sizeof(*n));
    bool first = true;
    for (char *field = s, *next; field; field = next, first = false) {
        next = strchr(field, ',');
        if (next)
            *next++ = '\0';
        int ret =
            first ? cli_net_kind(field, n, orig, errmsg) : cli_net_field(field, n, orig, errmsg);
        if (ret < 0)
            return ret;
    }
    return 0;
}
