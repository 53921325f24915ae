// Next fire times (Cron::next/next_n) for cases worked out by hand: in UTC, then across the
// daylight-saving transitions of zones with ordinary and odd rules. Every expected instant is
// UTC; the comments give the local wall time and offset (from `zdump -v`).
#include <string>
#include <thread>
#include <vector>

#include "schedule/cron.h"
#include "schedule_test_util.h"

namespace haven::schedule {
namespace {

using testing::cron;
using testing::fires;
using testing::iso;
using testing::kSecond;
using testing::T;
using testing::Times;
using testing::zone;

// --- UTC ----------------------------------------------------------------------------------------

TEST(CronNext, EveryMinuteIsStrictlyAfter) {
  EXPECT_EQ(fires("* * * * *", "UTC", "2026-01-01 00:00", 3),
            (Times{"2026-01-01 00:01", "2026-01-01 00:02", "2026-01-01 00:03"}));
  // Within a minute: the next whole minute.
  EXPECT_EQ(fires("* * * * *", "UTC", T("2026-01-01 00:00:30"), 1), (Times{"2026-01-01 00:01"}));
  EXPECT_EQ(fires("* * * * *", "UTC", T("2026-01-01 00:01") - 1, 1), (Times{"2026-01-01 00:01"}));
}

TEST(CronNext, AnInstantOnAFireTimeGivesTheFollowingOne) {
  const Cron c = cron("0 3 * * *");
  const Zone utc = Zone::utc();
  EXPECT_EQ(iso(c.next(T("2026-01-01 03:00"), utc)), "2026-01-02 03:00");
  EXPECT_EQ(iso(c.next(T("2026-01-01 03:00") - 1, utc)), "2026-01-01 03:00");
  EXPECT_EQ(iso(c.next(T("2026-01-01 03:00") + 1, utc)), "2026-01-02 03:00");
  // next() chained from each result gives next_n().
  std::vector<TimeNs> chained;
  TimeNs t = T("2026-01-01 00:00");
  for (int i = 0; i < 5; ++i) chained.push_back(t = c.next(t, utc));
  EXPECT_EQ(chained, c.next_n(T("2026-01-01 00:00"), utc, 5));
}

TEST(CronNext, CalendarRollovers) {
  EXPECT_EQ(fires("0 0 1 1 *", "UTC", "2026-06-01 00:00", 2),
            (Times{"2027-01-01 00:00", "2028-01-01 00:00"}));
  EXPECT_EQ(fires("59 23 31 12 *", "UTC", "2026-12-31 23:59", 1), (Times{"2027-12-31 23:59"}));
  // The 31st skips the months without one.
  EXPECT_EQ(fires("0 0 31 * *", "UTC", "2026-01-31 00:00", 4),
            (Times{"2026-03-31 00:00", "2026-05-31 00:00", "2026-07-31 00:00",
                   "2026-08-31 00:00"}));
  EXPECT_EQ(fires("0 12 * * *", "UTC", "2026-02-28 12:00", 2),
            (Times{"2026-03-01 12:00", "2026-03-02 12:00"}));
  EXPECT_EQ(fires("0 12 * * *", "UTC", "2028-02-28 12:00", 2),
            (Times{"2028-02-29 12:00", "2028-03-01 12:00"}));
  EXPECT_EQ(fires("*/20 23 * * *", "UTC", "2026-12-31 23:40", 2),
            (Times{"2027-01-01 23:00", "2027-01-01 23:20"}));
}

TEST(CronNext, LeapDaysWaitYears) {
  EXPECT_EQ(fires("0 0 29 2 *", "UTC", "2026-01-01 00:00", 3),
            (Times{"2028-02-29 00:00", "2032-02-29 00:00", "2036-02-29 00:00"}));
  // 2100 is no leap year: eight years from 2096 to 2104, the longest wait there is.
  EXPECT_EQ(fires("0 0 29 2 *", "UTC", "2096-03-01 00:00", 1), (Times{"2104-02-29 00:00"}));
  EXPECT_EQ(fires("0 0 29 2 *", "Europe/Berlin", "2096-02-28 23:00", 1),
            (Times{"2104-02-28 23:00"}));
}

TEST(CronNext, DayOfMonthOrDayOfWeek) {
  // 2026-01-01 is a Thursday. "0 0 31 * 1": every Monday and every 31st.
  EXPECT_EQ(fires("0 0 31 * 1", "UTC", "2026-01-01 00:00", 6),
            (Times{"2026-01-05 00:00", "2026-01-12 00:00", "2026-01-19 00:00",
                   "2026-01-26 00:00", "2026-01-31 00:00", "2026-02-02 00:00"}));
  // With the day of month "*", Mondays only; with the day of week "*", 31sts only.
  EXPECT_EQ(fires("0 0 * * 1", "UTC", "2026-01-26 00:00", 2),
            (Times{"2026-02-02 00:00", "2026-02-09 00:00"}));
  EXPECT_EQ(fires("0 0 31 * *", "UTC", "2026-01-01 00:00", 2),
            (Times{"2026-01-31 00:00", "2026-03-31 00:00"}));
  // Friday the 13th and the 13th of any month and every Friday: OR.
  EXPECT_EQ(fires("0 0 13 * 5", "UTC", "2026-02-01 00:00", 4),
            (Times{"2026-02-06 00:00", "2026-02-13 00:00", "2026-02-20 00:00",
                   "2026-02-27 00:00"}));
  // Mondays in January and July only (month AND the weekday).
  EXPECT_EQ(fires("0 9 * JAN,JUL MON", "UTC", "2026-01-20 00:00", 3),
            (Times{"2026-01-26 09:00", "2026-07-06 09:00", "2026-07-13 09:00"}));
  // Weekdays at 02:30 from a Friday.
  EXPECT_EQ(fires("30 2 * * 1-5", "UTC", "2026-01-02 03:00", 2),
            (Times{"2026-01-05 02:30", "2026-01-06 02:30"}));
}

TEST(CronNext, MacrosFire) {
  EXPECT_EQ(fires("@hourly", "UTC", "2026-01-01 00:00", 2),
            (Times{"2026-01-01 01:00", "2026-01-01 02:00"}));
  EXPECT_EQ(fires("@weekly", "UTC", "2026-01-01 00:00", 2),  // Sundays
            (Times{"2026-01-04 00:00", "2026-01-11 00:00"}));
  EXPECT_EQ(fires("@monthly", "UTC", "2026-01-01 00:00", 2),
            (Times{"2026-02-01 00:00", "2026-03-01 00:00"}));
}

TEST(CronNext, BeforeTheEpochAndAtTheEndOfTime) {
  EXPECT_EQ(fires("0 0 1 1 *", "UTC", "1969-06-01 00:00", 2),
            (Times{"1970-01-01 00:00", "1971-01-01 00:00"}));
  EXPECT_EQ(fires("0 0 1 1 *", "UTC", -1, 1), (Times{"1970-01-01 00:00"}));
  EXPECT_EQ(fires("* * * * *", "UTC", T("1969-12-31 23:59") - 1, 1), (Times{"1969-12-31 23:59"}));
  EXPECT_EQ(fires("0 0 1 1 *", "America/New_York", "1960-06-01 00:00", 1),
            (Times{"1961-01-01 05:00"}));
  // TimeNs ends on 2262-04-11: nothing after it is representable.
  const Cron yearly = cron("0 0 1 1 *");
  EXPECT_EQ(yearly.next(T("2262-01-02 00:00"), Zone::utc()), Cron::kNever);
  EXPECT_TRUE(yearly.next_n(T("2262-01-02 00:00"), Zone::utc(), 3).empty());
  EXPECT_EQ(yearly.next(Cron::kNever - 1, Zone::utc()), Cron::kNever);
  EXPECT_EQ(yearly.next(Cron::kNever, Zone::utc()), Cron::kNever);
  EXPECT_EQ(fires("0 0 * * *", "UTC", "2262-04-09 12:00", 5),
            (Times{"2262-04-10 00:00", "2262-04-11 00:00"}));
  EXPECT_EQ(iso(yearly.next(std::numeric_limits<TimeNs>::min(), Zone::utc())),
            "1678-01-01 00:00");
}

// --- Europe/Berlin: CET (+1) / CEST (+2), transitions at 01:00Z ----------------------------------

TEST(CronNextDst, BerlinSpringGapFiresOnceAtTheGapsEnd) {
  // 2026-03-29: 02:00 CET is followed by 03:00 CEST (01:00Z); 02:00-02:59 do not exist.
  EXPECT_EQ(fires("30 2 * * *", "Europe/Berlin", "2026-03-27 12:00", 4),
            (Times{"2026-03-28 01:30",    // 02:30 CET
                   "2026-03-29 01:00",    // 02:30 does not exist: 03:00 CEST
                   "2026-03-30 00:30",    // 02:30 CEST
                   "2026-03-31 00:30"}));
  // Every wall time of the gap collapses into one fire.
  EXPECT_EQ(fires("*/15 2 * * *", "Europe/Berlin", "2026-03-29 00:00", 2),
            (Times{"2026-03-29 01:00", "2026-03-30 00:00"}));
  // ...and with the gap's end itself (03:00 CEST), which exists.
  EXPECT_EQ(fires("*/15 2,3 * * *", "Europe/Berlin", "2026-03-29 00:50", 3),
            (Times{"2026-03-29 01:00", "2026-03-29 01:15", "2026-03-29 01:30"}));
  EXPECT_EQ(fires("0 3 * * *", "Europe/Berlin", "2026-03-28 12:00", 2),
            (Times{"2026-03-29 01:00", "2026-03-30 01:00"}));
  // Hourly stays hourly across the gap: 01:00 CET, (02:00 → 03:00 CEST), 04:00 CEST.
  EXPECT_EQ(fires("0 * * * *", "Europe/Berlin", "2026-03-28 23:30", 3),
            (Times{"2026-03-29 00:00", "2026-03-29 01:00", "2026-03-29 02:00"}));
  // From the gap's fire, and from the second before it.
  EXPECT_EQ(fires("30 2 * * *", "Europe/Berlin", "2026-03-29 01:00", 1),
            (Times{"2026-03-30 00:30"}));
  EXPECT_EQ(fires("30 2 * * *", "Europe/Berlin", "2026-03-29 00:59:59", 1),
            (Times{"2026-03-29 01:00"}));
}

TEST(CronNextDst, BerlinFallOverlapFiresOnlyTheFirstOccurrence) {
  // 2026-10-25: 02:59:59 CEST is followed by 02:00 CET (01:00Z); 02:00-02:59 happen twice.
  EXPECT_EQ(fires("30 2 * * *", "Europe/Berlin", "2026-10-24 12:00", 2),
            (Times{"2026-10-25 00:30",    // 02:30 CEST, not 02:30 CET
                   "2026-10-26 01:30"}));  // 02:30 CET the next day
  EXPECT_EQ(fires("*/30 * * * *", "Europe/Berlin", "2026-10-24 23:45", 4),
            (Times{"2026-10-25 00:00",    // 02:00 CEST
                   "2026-10-25 00:30",    // 02:30 CEST
                   "2026-10-25 02:00",    // 03:00 CET: no 02:00 / 02:30 CET
                   "2026-10-25 02:30"}));
  // Starting during the second pass of the repeated hour: the rest of it does not fire.
  EXPECT_EQ(fires("*/30 * * * *", "Europe/Berlin", "2026-10-25 01:10", 1),
            (Times{"2026-10-25 02:00"}));
  EXPECT_EQ(fires("30 2 * * *", "Europe/Berlin", "2026-10-25 01:10", 1),
            (Times{"2026-10-26 01:30"}));
  EXPECT_EQ(fires("0 2 * * *", "Europe/Berlin", "2026-10-25 01:00", 1),  // at 02:00 CET
            (Times{"2026-10-26 01:00"}));
  // Starting during the first pass: its remaining wall times fire once.
  EXPECT_EQ(fires("*/20 2 * * *", "Europe/Berlin", "2026-10-25 00:10", 3),
            (Times{"2026-10-25 00:20", "2026-10-25 00:40", "2026-10-26 01:00"}));
  EXPECT_EQ(fires("59 2 * * *", "Europe/Berlin", "2026-10-24 12:00", 1),
            (Times{"2026-10-25 00:59"}));
  // 03:00 comes once, in CET.
  EXPECT_EQ(fires("0 3 * * *", "Europe/Berlin", "2026-10-24 12:00", 1),
            (Times{"2026-10-25 02:00"}));
  // Hourly: 02:00 CEST, then 03:00 CET two hours later (no fire at 02:00 CET).
  EXPECT_EQ(fires("0 * * * *", "Europe/Berlin", "2026-10-24 23:30", 3),
            (Times{"2026-10-25 00:00", "2026-10-25 02:00", "2026-10-25 03:00"}));
}

// --- America/New_York: EST (-5) / EDT (-4) -----------------------------------------------------

TEST(CronNextDst, NewYork) {
  // 2026-03-08 07:00Z: 02:00 EST → 03:00 EDT.
  EXPECT_EQ(fires("30 2 * * *", "America/New_York", "2026-03-07 12:00", 3),
            (Times{"2026-03-08 07:00", "2026-03-09 06:30", "2026-03-10 06:30"}));
  // 2026-11-01 06:00Z: 02:00 EDT → 01:00 EST; 01:00-01:59 twice.
  EXPECT_EQ(fires("30 1 * * *", "America/New_York", "2026-10-31 12:00", 2),
            (Times{"2026-11-01 05:30", "2026-11-02 06:30"}));
  EXPECT_EQ(fires("*/20 1 * * *", "America/New_York", "2026-11-01 05:50", 2),
            (Times{"2026-11-02 06:00", "2026-11-02 06:20"}));
}

// --- Australia/Lord_Howe: +10:30 / +11, a 30-minute shift ---------------------------------------

TEST(CronNextDst, LordHoweHalfHourShift) {
  // 2026-04-04 15:00Z: 02:00 (+11) → 01:30 (+10:30); 01:30-01:59 twice.
  EXPECT_EQ(fires("45 1 * * *", "Australia/Lord_Howe", "2026-04-04 00:00", 2),
            (Times{"2026-04-04 14:45",    // 01:45 +11
                   "2026-04-05 15:15"}));  // 01:45 +10:30 the next day
  EXPECT_EQ(fires("*/15 * * * *", "Australia/Lord_Howe", "2026-04-04 14:40", 3),
            (Times{"2026-04-04 14:45",    // 01:45 +11
                   "2026-04-04 15:30",    // 02:00 +10:30 (01:30 and 01:45 again: no)
                   "2026-04-04 15:45"}));
  // From the second pass of 01:30-01:59 (01:35 +10:30): 01:45 fired on the first pass.
  EXPECT_EQ(fires("*/15 * * * *", "Australia/Lord_Howe", "2026-04-04 15:05", 2),
            (Times{"2026-04-04 15:30", "2026-04-04 15:45"}));
  // 2026-10-03 15:30Z: 02:00 (+10:30) → 02:30 (+11); 02:00-02:29 do not exist.
  EXPECT_EQ(fires("15 2 * * *", "Australia/Lord_Howe", "2026-10-03 00:00", 2),
            (Times{"2026-10-03 15:30",    // gap's end, 02:30 +11
                   "2026-10-04 15:15"}));  // 02:15 +11
  EXPECT_EQ(fires("*/10 2 * * *", "Australia/Lord_Howe", "2026-10-03 15:00", 4),
            (Times{"2026-10-03 15:30",    // 02:00, 02:10, 02:20 and 02:30 +11 in one
                   "2026-10-03 15:40", "2026-10-03 15:50", "2026-10-04 15:00"}));
  // An hourly schedule loses nothing and doubles nothing over the half-hour shifts.
  EXPECT_EQ(fires("0 * * * *", "Australia/Lord_Howe", "2026-10-03 13:00", 4),
            (Times{"2026-10-03 13:30",    // 00:00 +10:30
                   "2026-10-03 14:30",    // 01:00 +10:30
                   "2026-10-03 15:30",    // 02:00 does not exist: 02:30 +11
                   "2026-10-03 16:00"}));  // 03:00 +11
}

// --- Pacific/Chatham: +12:45 / +13:45, transitions at 02:45 standard time -------------------------

TEST(CronNextDst, ChathamQuarterHourOffsets) {
  // 2026-04-04 14:00Z: 03:45 (+13:45) → 02:45 (+12:45); 02:45-03:44 twice.
  EXPECT_EQ(fires("0 3 * * *", "Pacific/Chatham", "2026-04-04 00:00", 2),
            (Times{"2026-04-04 13:15",    // 03:00 +13:45
                   "2026-04-05 14:15"}));  // 03:00 +12:45
  EXPECT_EQ(fires("44,45 2,3 * * *", "Pacific/Chatham", "2026-04-04 12:59", 5),
            (Times{"2026-04-04 13:00",    // 02:45 +13:45 (02:44 +13:45 was 12:59Z)
                   "2026-04-04 13:59",    // 03:44 +13:45; at 14:00Z 02:45 +12:45 repeats
                   "2026-04-04 15:00",    // 03:45 exists only in +12:45
                   "2026-04-05 13:59",    // 02:44 +12:45 the next day
                   "2026-04-05 14:00"}));
  // 2026-09-26 14:00Z: 02:45 (+12:45) → 03:45 (+13:45); 02:45-03:44 do not exist.
  EXPECT_EQ(fires("0 3 * * *", "Pacific/Chatham", "2026-09-26 00:00", 2),
            (Times{"2026-09-26 14:00",    // gap's end, 03:45 +13:45
                   "2026-09-27 13:15"}));  // 03:00 +13:45
  EXPECT_EQ(fires("30 2 * * *", "Pacific/Chatham", "2026-09-26 00:00", 1),
            (Times{"2026-09-26 13:45"}));  // 02:30 +12:45 exists
  EXPECT_EQ(fires("45 2 * * *", "Pacific/Chatham", "2026-09-26 00:00", 1),
            (Times{"2026-09-26 14:00"}));  // 02:45 is the gap's first minute
}

// --- Southern hemisphere: Australia/Sydney and America/Sao_Paulo ---------------------------------

TEST(CronNextDst, SydneyAutumnAndSpring) {
  // 2026-04-04 16:00Z: 03:00 AEDT (+11) → 02:00 AEST (+10).
  EXPECT_EQ(fires("30 2 * * *", "Australia/Sydney", "2026-04-04 00:00", 2),
            (Times{"2026-04-04 15:30", "2026-04-05 16:30"}));
  // 2026-10-03 16:00Z: 02:00 AEST → 03:00 AEDT.
  EXPECT_EQ(fires("30 2 * * *", "Australia/Sydney", "2026-10-03 00:00", 2),
            (Times{"2026-10-03 16:00", "2026-10-04 15:30"}));
}

TEST(CronNextDst, SaoPauloTransitionsAtMidnight) {
  // 2018-11-04 03:00Z: 00:00 (-3) → 01:00 (-2): midnight does not exist.
  EXPECT_EQ(fires("@daily", "America/Sao_Paulo", "2018-11-03 12:00", 2),
            (Times{"2018-11-04 03:00", "2018-11-05 02:00"}));
  EXPECT_EQ(fires("30 0 * * *", "America/Sao_Paulo", "2018-11-03 12:00", 1),
            (Times{"2018-11-04 03:00"}));
  // 2019-02-17 02:00Z: 00:00 (-2) on the 17th → 23:00 (-3) on the 16th; 23:00-23:59 twice.
  EXPECT_EQ(fires("30 23 * * *", "America/Sao_Paulo", "2019-02-16 12:00", 2),
            (Times{"2019-02-17 01:30", "2019-02-18 02:30"}));
  // Since 2019 no DST: -3 all year.
  EXPECT_EQ(fires("0 0 * * *", "America/Sao_Paulo", "2026-01-01 12:00", 1),
            (Times{"2026-01-02 03:00"}));
}

TEST(CronNextDst, HavanaAtMidnight) {
  // 2026-03-08 05:00Z: 00:00 CST (-5) → 01:00 CDT (-4).
  EXPECT_EQ(fires("0 0 * * *", "America/Havana", "2026-03-07 12:00", 2),
            (Times{"2026-03-08 05:00", "2026-03-09 04:00"}));
  // 2026-11-01 05:00Z: 01:00 CDT → 00:00 CST; 00:00-00:59 twice.
  EXPECT_EQ(fires("30 0 * * *", "America/Havana", "2026-10-31 12:00", 2),
            (Times{"2026-11-01 04:30", "2026-11-02 05:30"}));
}

TEST(CronNextDst, CasablancaRamadanSwitches) {
  // 2026-02-15 02:00Z: 03:00 (+1) → 02:00 (+0); 2026-03-22 02:00Z: 02:00 (+0) → 03:00 (+1).
  EXPECT_EQ(fires("30 2 * * *", "Africa/Casablanca", "2026-02-14 12:00", 2),
            (Times{"2026-02-15 01:30", "2026-02-16 02:30"}));
  EXPECT_EQ(fires("30 2 * * *", "Africa/Casablanca", "2026-03-21 12:00", 2),
            (Times{"2026-03-22 02:00", "2026-03-23 01:30"}));
}

TEST(CronNextDst, KolkataHalfHourOffsetWithoutDst) {
  EXPECT_EQ(fires("0 9 * * *", "Asia/Kolkata", "2026-06-01 00:00", 2),
            (Times{"2026-06-01 03:30", "2026-06-02 03:30"}));
}

TEST(CronNext, SafeFromManyThreads) {
  const Cron c = cron("*/7 1-3 * * *");
  const std::vector<std::string> names = {"Europe/Berlin", "Australia/Lord_Howe",
                                          "Pacific/Chatham", "America/New_York"};
  std::vector<std::vector<TimeNs>> alone;
  for (const std::string& n : names) alone.push_back(c.next_n(T("2026-03-01 00:00"), zone(n), 200));
  std::vector<std::vector<TimeNs>> together(names.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < names.size(); ++i) {
    threads.emplace_back([&, i] {
      const Zone z = *Zone::load(names[i]);
      for (int round = 0; round < 20; ++round) together[i] = c.next_n(T("2026-03-01 00:00"), z, 200);
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(together, alone);
}

}  // namespace
}  // namespace haven::schedule
