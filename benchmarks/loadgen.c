/*
 * loadgen: publish N native-contract smoke telemetry messages for M devices over one
 * libmosquitto connection and print the rate achieved (see README-loadgen.md).
 *
 *   gcc -O2 -o loadgen loadgen.c -lmosquitto
 *   ./loadgen -h 127.0.0.1 -p 1883 -n 1000000 -m 1000 -q 1 -s demo
 *   ./loadgen -p 1883 -n 450000 -r 15000      # paced: 15,000 msg/s for 30 s
 *   ./loadgen -p 1883 -n 300000 -m 10000 -r 5000 -x   # a community's mixed fleet
 *
 * With -x the M devices are a community's mix by device number (of every 100: 35 smoke
 * detectors SD-LG-*, 10 SOS buttons SOS-LG-*, 15 gates GT-LG-*, 40 charger ports CP-LG-*,
 * numbered by their place in the whole fleet), and each type gets the share of the messages
 * its profile's reporting interval gives it (charger 1 min, gate 5 min, SOS 1 h, smoke 24 h:
 * the chargers send most of them), every payload inside the profile's normal ranges.
 *
 * Every message is a valid native payload: topic safety/{site}/smoke/{device_id}/telemetry,
 * JSON with ts (epoch ms, wall clock) and a per-device seq that only grows; the seq start
 * follows wall time (10 per second since 2023-11-14) so a rerun is not taken for a redelivery.
 */
#include <errno.h>
#include <mosquitto.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static atomic_long acked;
static atomic_int connected;

static long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double mono_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void on_connect(struct mosquitto *m, void *ud, int rc) {
    (void)m; (void)ud;
    if (rc == 0) atomic_store(&connected, 1);
    else fprintf(stderr, "connect refused: %s\n", mosquitto_connack_string(rc));
}

static void on_publish(struct mosquitto *m, void *ud, int mid) {
    (void)m; (void)ud; (void)mid;
    atomic_fetch_add(&acked, 1);
}

/* The mixed fleet (-x): type by device number, message share by reporting interval. */
enum { SMOKE, SOS, GATE, CHARGER, TYPES };
static const char *type_name[TYPES] = {"smoke", "sos", "gate", "charger"};
static const char *id_prefix[TYPES] = {"SD-LG", "SOS-LG", "GT-LG", "CP-LG"};
static const double interval_s[TYPES] = {86400, 3600, 300, 60};

static int type_of(long d) {
    long slot = d % 100;
    if (slot < 35) return SMOKE;
    if (slot < 45) return SOS;
    if (slot < 60) return GATE;
    return CHARGER;
}

static int mixed_payload(char *buf, size_t size, int type, long long ts, long long seq,
                         unsigned int rnd) {
    switch (type) {
    case SMOKE:
        return snprintf(buf, size,
                        "{\"ts\":%lld,\"seq\":%lld,\"smoke_dbm\":0.0%u,\"temp_c\":%u.%u,"
                        "\"battery_pct\":%u,\"rssi_dbm\":-%u}",
                        ts, seq, 10 + (rnd >> 8) % 40, 18 + (rnd >> 12) % 12, (rnd >> 4) % 10,
                        30 + (rnd >> 16) % 70, 75 + (rnd >> 20) % 35);
    case SOS:
        return snprintf(buf, size, "{\"ts\":%lld,\"seq\":%lld,\"battery_pct\":%u,\"rssi_dbm\":-%u}",
                        ts, seq, 30 + (rnd >> 16) % 70, 75 + (rnd >> 20) % 35);
    case GATE:
        return snprintf(buf, size, "{\"ts\":%lld,\"seq\":%lld,\"door_open\":%s,\"battery_pct\":%u}",
                        ts, seq, (rnd >> 9) % 8 ? "false" : "true", 30 + (rnd >> 16) % 70);
    default: /* a charging port: 150-950 W, 25-44 °C, leakage under 5 mA */
        return snprintf(buf, size,
                        "{\"ts\":%lld,\"seq\":%lld,\"port\":1,\"state\":\"charging\","
                        "\"voltage_v\":22%u.%u,\"current_a\":%u.%u,\"power_w\":%u.%u,"
                        "\"energy_wh\":%u.0,\"temp_c\":%u.%u,\"leak_ma\":%u.%u}",
                        ts, seq, (rnd >> 3) % 10, (rnd >> 5) % 10, 1 + (rnd >> 7) % 4,
                        (rnd >> 11) % 10, 150 + (rnd >> 13) % 800, (rnd >> 6) % 10,
                        100 + (rnd >> 10) % 900, 25 + (rnd >> 14) % 20, (rnd >> 18) % 10,
                        (rnd >> 19) % 5, (rnd >> 21) % 10);
    }
}

static void usage(const char *argv0) {
    fprintf(stderr,
            "usage: %s [-h host] [-p port] [-n messages] [-m devices] [-q 0|1] [-s site]\n"
            "          [-w window] [-i client_id] [-r rate] [-x] [-o offset]\n"
            "  -x: a community's mixed fleet (see the top of loadgen.c)\n"
            "  -o: device numbers start after offset (several sites, ids unique across them)\n"
            "  -r: messages per second (paced; default 0 = as fast as acknowledgements allow)\n"
            "  -w: messages allowed unacknowledged before the publisher waits (default 100;\n"
            "      libmosquitto looks PUBACKs up in a list, so big windows get slower)\n",
            argv0);
}

int main(int argc, char **argv) {
    const char *host = "127.0.0.1", *site = "demo", *client_id = NULL;
    int port = 1883, qos = 1, opt, mixed = 0;
    long n = 100000, devices = 1000, window = 100, offset = 0;
    double rate = 0;
    while ((opt = getopt(argc, argv, "h:p:n:m:q:s:w:i:r:xo:")) != -1) {
        switch (opt) {
        case 'h': host = optarg; break;
        case 'p': port = atoi(optarg); break;
        case 'n': n = atol(optarg); break;
        case 'm': devices = atol(optarg); break;
        case 'q': qos = atoi(optarg); break;
        case 's': site = optarg; break;
        case 'w': window = atol(optarg); break;
        case 'i': client_id = optarg; break;
        case 'r': rate = atof(optarg); break;
        case 'x': mixed = 1; break;
        case 'o': offset = atol(optarg); break;
        default: usage(argv[0]); return 2;
        }
    }
    if (n <= 0 || devices <= 0 || (qos != 0 && qos != 1) || window <= 0 || rate < 0) {
        usage(argv[0]);
        return 2;
    }
    long long *seq = calloc((size_t)devices, sizeof *seq);
    if (!seq) return 1;
    long long seq_start = (long long)((now_ms() / 1000 - 1700000000LL) * 10) % 4000000000LL;
    for (long d = 0; d < devices; d++) seq[d] = seq_start;
    /* Mixed fleet: the devices of each type, and smooth weighted round robin over the types. */
    long *of_type[TYPES], count[TYPES] = {0}, next[TYPES] = {0};
    double weight[TYPES], credit[TYPES] = {0}, total = 0;
    for (int t = 0; t < TYPES; t++) {
        of_type[t] = malloc((size_t)devices * sizeof(long));
        if (!of_type[t]) return 1;
    }
    for (long d = 0; d < devices; d++) {
        int t = type_of(d + offset);
        of_type[t][count[t]++] = d;
    }
    for (int t = 0; t < TYPES; t++) {
        weight[t] = count[t] ? count[t] / interval_s[t] : 0;
        total += weight[t];
    }

    mosquitto_lib_init();
    char id[64];
    snprintf(id, sizeof id, "loadgen-%d", (int)getpid());
    struct mosquitto *mosq = mosquitto_new(client_id ? client_id : id, true, NULL);
    if (!mosq) { perror("mosquitto_new"); return 1; }
    mosquitto_connect_callback_set(mosq, on_connect);
    mosquitto_publish_callback_set(mosq, on_publish);
    mosquitto_max_inflight_messages_set(mosq, 0); /* 0 = no client-side inflight cap */
    int rc = mosquitto_connect(mosq, host, port, 60);
    if (rc != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "connect to %s:%d failed: %s\n", host, port, mosquitto_strerror(rc));
        return 1;
    }
    mosquitto_loop_start(mosq);
    for (int i = 0; i < 1000 && !atomic_load(&connected); i++) usleep(10000);
    if (!atomic_load(&connected)) { fprintf(stderr, "no CONNACK\n"); return 1; }

    char topic[160], payload[256];
    unsigned int rnd = (unsigned int)getpid();
    double t0 = mono_s();
    for (long i = 0; i < n; i++) {
        long d = i % devices;
        int type = SMOKE;
        if (mixed) {
            int best = 0;
            for (int t = 0; t < TYPES; t++) {
                credit[t] += weight[t];
                if (credit[t] > credit[best]) best = t;
            }
            credit[best] -= total;
            type = best;
            d = of_type[type][next[type]++ % count[type]];
        }
        while (i - atomic_load(&acked) >= window) usleep(50);
        if (rate > 0) { /* pace: message i is due at t0 + i / rate */
            double ahead = t0 + i / rate - mono_s();
            if (ahead > 0.0005) usleep((useconds_t)(ahead * 1e6));
        }
        rnd = rnd * 1103515245u + 12345u;
        if (mixed) {
            snprintf(topic, sizeof topic, "safety/%s/%s/%s-%06ld/telemetry", site,
                     type_name[type], id_prefix[type], d + offset + 1);
            int len = mixed_payload(payload, sizeof payload, type, now_ms(), ++seq[d], rnd);
            rc = mosquitto_publish(mosq, NULL, topic, len, payload, qos, false);
            goto published;
        }
        snprintf(topic, sizeof topic, "safety/%s/smoke/SD-LG-%06ld/telemetry", site, d + offset + 1);
        int len = snprintf(payload, sizeof payload,
                           "{\"ts\":%lld,\"seq\":%lld,\"smoke_dbm\":0.0%u,\"temp_c\":%u.%u,"
                           "\"battery_pct\":%u,\"rssi_dbm\":-%u}",
                           now_ms(), ++seq[d], 10 + (rnd >> 8) % 40, 18 + (rnd >> 12) % 12,
                           (rnd >> 4) % 10, 30 + (rnd >> 16) % 70, 75 + (rnd >> 20) % 35);
        rc = mosquitto_publish(mosq, NULL, topic, len, payload, qos, false);
    published:
        if (rc != MOSQ_ERR_SUCCESS) {
            if (rc == MOSQ_ERR_NO_CONN || rc == MOSQ_ERR_CONN_LOST) {
                usleep(1000);
                i--;
                continue;
            }
            fprintf(stderr, "publish failed: %s\n", mosquitto_strerror(rc));
            return 1;
        }
    }
    double t_sent = mono_s() - t0;
    /* QoS 1: wait for the last PUBACK; QoS 0: on_publish fires once written to the socket */
    for (int i = 0; i < 6000 && atomic_load(&acked) < n; i++) usleep(5000);
    double t_all = mono_s() - t0;
    long done = atomic_load(&acked);
    printf("loadgen: %ld messages for %ld devices at QoS %d to %s:%d\n", n, devices, qos, host,
           port);
    printf("  queued in %.2f s, %s in %.2f s: %.0f msg/s achieved%s\n", t_sent,
           qos ? "acknowledged" : "written", t_all, done / t_all,
           done < n ? " (NOT all acknowledged)" : "");
    mosquitto_disconnect(mosq);
    mosquitto_loop_stop(mosq, false);
    mosquitto_destroy(mosq);
    mosquitto_lib_cleanup();
    free(seq);
    for (int t = 0; t < TYPES; t++) free(of_type[t]);
    return done < n ? 1 : 0;
}
