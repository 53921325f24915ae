#!/usr/bin/env python3
"""An independent oracle for src/schedule/cron.h, run by tests/schedule/cron_oracle_test.cc.

Reads cases from stdin, one per line:   ZONE <TAB> AFTER_NS <TAB> K <TAB> EXPRESSION
and answers each on one line of stdout:
    fires T1:KIND T2:KIND ...   the first K fire instants strictly after AFTER_NS, in seconds
                                since the epoch (UTC); KIND is u (the wall time occurs once),
                                a (it occurs twice: the first occurrence fires) or g (it falls
                                in a gap: the gap's end fires); fewer than K if nine years
                                pass without one
    never                       the expression parses but can never fire
    invalid REASON              the expression does not parse

It shares no code or algorithm with the C++: it parses the expression itself into Python sets,
walks local calendar days one by one, lists every matching wall time of a matching day, and maps
each to an instant with zoneinfo (Python's own reading of the system's zone files, including
their closing POSIX rule): fold=0 is the first occurrence of a repeated wall time; a wall time
that does not survive the round trip to UTC and back is in a gap, whose end is found by bisection
over UTC seconds. Fire instants are those mapped instants after AFTER_NS, each counted once.
"""

import calendar
import datetime as dt
import sys
from zoneinfo import ZoneInfo

MONTH_NAMES = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
DAY_NAMES = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]
MACROS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
# Wall times this far before the local time of AFTER are still looked at: a clock set back by
# up to this much can map them after AFTER. (No zone sets its clock back by more than 2 hours.)
LOOK_BACK = dt.timedelta(hours=3)
SEARCH_DAYS = 9 * 366


class Invalid(Exception):
    pass


def value(token, lo, hi, names, first_name_value):
    if token.isdigit() and token.isascii():
        v = int(token)
    elif names and token.upper() in names:
        v = names.index(token.upper()) + first_name_value
    else:
        raise Invalid("bad value %r" % token)
    if not lo <= v <= hi:
        raise Invalid("%r out of range" % token)
    return v


def parse_field(text, lo, hi, names=None, first_name_value=0, weekday=False):
    """The set of values a field selects (weekdays 0-6, 7 folded into 0)."""
    star_hi = 6 if weekday else hi
    out = set()
    for item in text.split(","):
        base, sep, step_text = item.partition("/")
        if base == "*":
            a, b = lo, star_hi
        elif "-" in base:
            left, _, right = base.partition("-")
            a = value(left, lo, hi, names, first_name_value)
            b = value(right, lo, hi, names, first_name_value)
            if weekday and b == 0 and a > 0:
                b = 7  # FRI-SUN
        else:
            a = b = value(base, lo, hi, names, first_name_value)
            if sep:
                raise Invalid("step after a single value")
        if a > b:
            raise Invalid("backwards range")
        step = 1
        if sep:
            if not (step_text.isdigit() and step_text.isascii()):
                raise Invalid("bad step")
            step = int(step_text)
            if not 1 <= step <= star_hi - lo + 1:
                raise Invalid("step out of range")
        for v in range(a, b + 1, step):
            out.add(v % 7 if weekday else v)
    return out


class Expr:
    def __init__(self, text):
        text = text.strip()
        words = text.split()
        if len(words) == 1 and words[0].lower() in MACROS:
            words = MACROS[words[0].lower()].split()
        if len(words) != 5:
            raise Invalid("want 5 fields")
        self.minutes = sorted(parse_field(words[0], 0, 59))
        self.hours = sorted(parse_field(words[1], 0, 23))
        self.doms = parse_field(words[2], 1, 31)
        self.months = parse_field(words[3], 1, 12, MONTH_NAMES, 1)
        self.dows = parse_field(words[4], 0, 7, DAY_NAMES, 0, weekday=True)
        self.dom_star = words[2] == "*"
        self.dow_star = words[4] == "*"

    def day_matches(self, d):
        if d.month not in self.months:
            return False
        dom = d.day in self.doms
        dow = d.isoweekday() % 7 in self.dows  # Sunday = 0
        if not self.dom_star and not self.dow_star:
            return dom or dow
        return dom and dow

    def can_fire(self):
        # Over 28 years every (month, day) meets every weekday, leap days included.
        start = dt.date(2000, 1, 1)
        return any(self.day_matches(start + dt.timedelta(days=i)) for i in range(28 * 366))


def local_naive(t, zone):
    return dt.datetime.fromtimestamp(t, zone).replace(tzinfo=None)


def fire_instant(wall, zone):
    """(instant, kind) at which the wall time `wall` (naive) fires in `zone`."""
    first = int(wall.replace(tzinfo=zone, fold=0).timestamp())
    if local_naive(first, zone) == wall:
        later = int(wall.replace(tzinfo=zone, fold=1).timestamp())
        kind = "a" if later != first and local_naive(later, zone) == wall else "u"
        return first, kind
    # In a gap: the two folds read it with the offsets before and after the transition, so the
    # transition lies between them. Find the first second whose local time is past `wall`.
    other = int(wall.replace(tzinfo=zone, fold=1).timestamp())
    lo, hi = min(first, other), max(first, other)
    if not (local_naive(lo, zone) < wall < local_naive(hi, zone)):
        raise RuntimeError("gap of %s not bracketed" % wall)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if local_naive(mid, zone) > wall:
            hi = mid
        else:
            lo = mid
    return hi, "g"


def fires(expr, zone, after_ns, k):
    after_s = after_ns // 10**9  # a fire t is strictly after AFTER_NS iff t > floor(AFTER_NS)
    start = local_naive(after_s, zone) - LOOK_BACK
    day = start.date()
    out = []
    previous = None
    idle_days = 0  # days since the last fire (or the start)
    while idle_days < SEARCH_DAYS:
        idle_days += 1
        if expr.day_matches(day):
            for h in expr.hours:
                for m in expr.minutes:
                    wall = dt.datetime(day.year, day.month, day.day, h, m)
                    if wall < start:
                        continue
                    t, kind = fire_instant(wall, zone)
                    if previous is not None and t < previous:
                        raise RuntimeError("fire times out of order at %s" % wall)
                    previous = t
                    if t <= after_s or (out and out[-1][0] == t):
                        continue
                    out.append((t, kind))
                    idle_days = 0
                    if len(out) == k:
                        return out
        day += dt.timedelta(days=1)
    return out


def main():
    zones = {}
    answers = []
    for line in sys.stdin:
        line = line.rstrip("\n")
        if not line:
            continue
        zone_name, after_ns, k, text = line.split("\t", 3)
        zone = zones.get(zone_name)
        if zone is None:
            zone = zones[zone_name] = ZoneInfo(zone_name)
        try:
            expr = Expr(text)
        except Invalid as e:
            answers.append("invalid " + str(e))
            continue
        found = fires(expr, zone, int(after_ns), int(k))
        if not found and not expr.can_fire():  # (can_fire is slow: asked only when needed)
            answers.append("never")
            continue
        answers.append(" ".join(["fires"] + ["%d:%s" % f for f in found]))
    sys.stdout.write("\n".join(answers) + "\n")


if __name__ == "__main__":
    main()
