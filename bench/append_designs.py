"""Where to take an audit event's position: four designs side by side, in plain SQL, on one machine and run.

Each writer process repeats one transaction: a business UPDATE, the design's audit step, `--client-ms` of
CPU in the client (what the application does between its audit step and its COMMIT: returning through its
service, its listeners' questions, Python's own scheduling on a busy machine), COMMIT.

- none: no audit step (the ceiling).
- at record: the append where the event is recorded: the head row locked FOR UPDATE, the event inserted with
  its position and chain hash, the head moved (what audit_append() does); the lock is held through the
  client's remaining work and its COMMIT round trip.
- at commit: the event written to a pending table whose deferred constraint trigger appends it inside the
  COMMIT (what audit_defer() does); the lock is held from inside the COMMIT to its WAL flush.
- sealer: the event written to a pending table with its transaction id; one sealer process, every 50 ms,
  takes the head lock and positions the pending rows whose transactions are all finished (xid below the
  snapshot's xmin: design D of the research). Writers never wait; positions are known only after the
  sealer's pass.

The event bodies are 300 random bytes, hashed and chained with sha256() as the registry does. After the runs
the log is checked: positions 1..N without a gap, N = events committed. Results go to
bench/results/append-designs-<time>.json.

    .venv/bin/python bench/append_designs.py                      # 16 and 1 writers, 5 s per run
    .venv/bin/python bench/append_designs.py --writers 8 --seconds 2 --client-ms 0
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import time

import common

OPTIONS = """
--writers  16  concurrent writers (each its own process and connection); a one-writer run follows
--seconds  5  seconds of each run
--client-ms  1.0  CPU ms the client spends between its audit step and its COMMIT
--rounds  2  times each design is run (they alternate, so a busy spell hits all of them)
"""

DESIGNS = ("none", "at record", "at commit", "sealer")

SETUP = r"""
CREATE TABLE business (id int PRIMARY KEY, n bigint NOT NULL);
INSERT INTO business SELECT g, 0 FROM generate_series(1, 64) g;
CREATE TABLE head (id int PRIMARY KEY, seq bigint NOT NULL, chain bytea NOT NULL);
INSERT INTO head VALUES (1, 0, '\x0000000000000000000000000000000000000000000000000000000000000000');
CREATE TABLE event (
    id bigserial PRIMARY KEY, seq bigint UNIQUE NOT NULL, at timestamptz NOT NULL, body bytea NOT NULL,
    leaf bytea NOT NULL, chain bytea NOT NULL);
CREATE FUNCTION append(p_body bytea) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE s bigint; c bytea; l bytea;
BEGIN
    SELECT seq, chain INTO STRICT s, c FROM head WHERE id = 1 FOR UPDATE;
    s := s + 1;
    l := sha256('\x00'::bytea || p_body);
    c := sha256('\x02'::bytea || c || l);
    INSERT INTO event (seq, at, body, leaf, chain) VALUES (s, clock_timestamp(), p_body, l, c);
    UPDATE head SET seq = s, chain = c WHERE id = 1;
    RETURN s;
END $$;
CREATE UNLOGGED TABLE pending (id bigserial PRIMARY KEY, body bytea NOT NULL);
CREATE FUNCTION pending_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM pending WHERE id = NEW.id;  -- (a row an append made at once took is gone already)
    IF FOUND THEN
        PERFORM append(NEW.body);
    END IF;
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER pending_at_commit AFTER INSERT ON pending
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION pending_at_commit();
CREATE TABLE sealable (id bigserial PRIMARY KEY, xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
    body bytea NOT NULL);
CREATE FUNCTION seal() RETURNS int LANGUAGE plpgsql AS $$
DECLARE r record; horizon xid8; n int := 0;
BEGIN
    PERFORM 1 FROM head WHERE id = 1 FOR UPDATE;  -- one sealer at a time
    horizon := pg_snapshot_xmin(pg_current_snapshot());  -- every xid below it has finished
    FOR r IN DELETE FROM sealable WHERE xid < horizon RETURNING id, xid, body LOOP
        n := n + 1;
    END LOOP;
    -- (a real sealer orders by (xid, id) and keeps a cursor; the cost is the same appends)
    FOR r IN SELECT g FROM generate_series(1, n) g LOOP
        PERFORM append('\x00'::bytea);
    END LOOP;
    RETURN n;
END $$;
"""

STEP = {
    "none": None,
    "at record": "SELECT append(%s)",
    "at commit": "INSERT INTO pending (body) VALUES (%s)",
    "sealer": "INSERT INTO sealable (body) VALUES (%s)",
}


def _burn(ms: float) -> None:
    end = time.perf_counter() + ms / 1000
    while time.perf_counter() < end:
        pass


def writer(url: str, design: str, seconds: float, client_ms: float, index: int, start, results) -> None:
    import psycopg

    body, step, done = os.urandom(300), STEP[design], 0
    with psycopg.connect(url) as conn:
        start.wait()
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            conn.execute("UPDATE business SET n = n + 1 WHERE id = %s", [1 + (done * 17 + index) % 64])
            if step:
                conn.execute(step, [body])
            _burn(client_ms)
            conn.commit()
            done += 1
    results.put(done)


def sealer(url: str, seconds: float, start, results) -> None:
    import psycopg

    sealed, passes = 0, 0
    with psycopg.connect(url, autocommit=True) as conn:
        start.wait()
        end = time.perf_counter() + seconds + 1.0  # then the rows of the last transactions
        while time.perf_counter() < end:
            sealed += conn.execute("SELECT seal()").fetchone()[0]
            passes += 1
            time.sleep(0.05)
    results.put(("sealer", sealed, passes))


def run(url: str, design: str, writers: int, seconds: float, client_ms: float, database: str) -> dict:
    context = multiprocessing.get_context("spawn")
    start, results = context.Barrier(writers + 1 + (design == "sealer")), context.Queue()
    procs = [
        context.Process(target=writer, args=(url, design, seconds, client_ms, i, start, results))
        for i in range(writers)
    ]
    if design == "sealer":
        procs.append(context.Process(target=sealer, args=(url, seconds, start, results)))
    for proc in procs:
        proc.start()
    meter = common.CpuMeter()
    start.wait()
    began = time.perf_counter()
    counts = [results.get(timeout=seconds + 60) for _ in procs]
    wall = time.perf_counter() - began
    for proc in procs:
        proc.join()
    mine = os.getpgid(0)
    database_part = common.postgres_owner(database)

    def owner(pid, pgid, command):
        return "client" if pgid == mine else database_part(pid, pgid, command)

    usage = meter.stop(owner)
    done = sum(count for count in counts if isinstance(count, int))
    sealed = [count for count in counts if isinstance(count, tuple)]
    return {
        "design": design,
        "writers": writers,
        "transactions": done,
        "per_s": round(done / seconds, 1),
        "wall": round(wall, 2),
        "sealer_passes": sealed[0][2] if sealed else None,
        "cpu": common.cores(usage, "client", "database"),
    }


def check(url: str, committed: int) -> str:
    import psycopg

    with psycopg.connect(url) as conn:
        count, low, high = conn.execute("SELECT count(*), min(seq), max(seq) FROM event").fetchone()
        head = conn.execute("SELECT seq FROM head").fetchone()[0]
        left = conn.execute(
            "SELECT (SELECT count(*) FROM pending) + (SELECT count(*) FROM sealable)"
        ).fetchone()[0]
    whole = count == committed == head and (count == 0 or (low, high) == (1, count)) and left == 0
    return f"{count} events, seq {low}..{high}, head {head}, expected {committed}, left pending {left}: " + (
        "gapless" if whole else "NOT WHOLE"
    )


def main() -> int:
    args = common.parser(__doc__, OPTIONS, ("BENCH_APPEND_PG_URL", "append_designs_bench")).parse_args()
    started = dt.datetime.now(dt.UTC)
    scratch = common.ScratchDatabase(args.pg_url)
    url = scratch.create()
    try:
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(SETUP)
        rows, committed = [], 0
        for writers in (args.writers, 1):
            for _ in range(args.rounds):
                for design in DESIGNS:
                    row = run(url, design, writers, args.seconds, args.client_ms, scratch.name)
                    committed += row["transactions"] if design != "none" else 0
                    rows.append(row)
                    other = row["cpu"].get("other_cores")
                    print(
                        f"{design:<10} {writers:>2} writer(s): {row['per_s']:>8.1f} tx/s   other processes "
                        f"{common.number(other)} cores" + ("  <- disturbed" if (other or 0) >= 0.15 else ""),
                        flush=True,
                    )
        log = check(url, committed)
        print(f"\nlog: {log}\n")
        summary = []
        for writers in (args.writers, 1):
            best = {
                design: max(r["per_s"] for r in rows if r["design"] == design and r["writers"] == writers)
                for design in DESIGNS
            }
            for design in DESIGNS[1:]:
                ratio = best[design] / best["none"] if best["none"] else None
                summary.append({"writers": writers, "design": design, "per_s": best[design], "ratio": ratio})
                print(
                    f"{writers:>2} writer(s), {design:<10}: {best[design]:>8.1f} / {best['none']:.1f} tx/s "
                    f"= {common.number(ratio)} of no audit (best of {args.rounds})"
                )
        common.write_results(
            "append-designs",
            started,
            {"meta": common.meta(started, args, "psycopg"), "runs": rows, "summary": summary, "log": log},
        )
        return 0 if "gapless" in log else 1
    finally:
        scratch.drop()


if __name__ == "__main__":
    raise SystemExit(common.run_main(main))
