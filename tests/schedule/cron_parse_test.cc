// Parsing cron expressions (schedule/cron.h): every syntax form checked against the value sets
// it must select, every refusal against its exact message.
#include <initializer_list>
#include <string>

#include "schedule/cron.h"
#include "schedule_test_util.h"

namespace haven::schedule {
namespace {

using testing::cron;

uint64_t bits(std::initializer_list<int> values) {
  uint64_t b = 0;
  for (int v : values) b |= uint64_t{1} << v;
  return b;
}
uint64_t span(int lo, int hi, int step = 1) {
  uint64_t b = 0;
  for (int v = lo; v <= hi; v += step) b |= uint64_t{1} << v;
  return b;
}

Cron::Fields fields(const std::string& text) { return cron(text).fields(); }

// The message of the error parse() returns (and that it is kInvalidArgument).
std::string error_of(const std::string& text) {
  Result<Cron> c = Cron::parse(text);
  if (c.ok()) return "(parsed)";
  EXPECT_EQ(c.error().code(), Error::Code::kInvalidArgument) << text;
  return c.error().message();
}

TEST(CronParse, StarsSelectEveryValue) {
  const Cron::Fields f = fields("* * * * *");
  EXPECT_EQ(f.minutes, span(0, 59));
  EXPECT_EQ(f.hours, span(0, 23));
  EXPECT_EQ(f.days, span(1, 31));
  EXPECT_EQ(f.months, span(1, 12));
  EXPECT_EQ(f.weekdays, span(0, 6));
  EXPECT_TRUE(f.any_day);
  EXPECT_TRUE(f.any_weekday);
}

TEST(CronParse, SingleValuesAtBothEndsOfEachRange) {
  Cron::Fields f = fields("0 0 1 1 0");
  EXPECT_EQ(f.minutes, bits({0}));
  EXPECT_EQ(f.hours, bits({0}));
  EXPECT_EQ(f.days, bits({1}));
  EXPECT_EQ(f.months, bits({1}));
  EXPECT_EQ(f.weekdays, bits({0}));
  EXPECT_FALSE(f.any_day);
  EXPECT_FALSE(f.any_weekday);
  f = fields("59 23 31 12 6");
  EXPECT_EQ(f.minutes, bits({59}));
  EXPECT_EQ(f.hours, bits({23}));
  EXPECT_EQ(f.days, bits({31}));
  EXPECT_EQ(f.months, bits({12}));
  EXPECT_EQ(f.weekdays, bits({6}));
  // Leading zeros are numbers too.
  EXPECT_EQ(fields("05 007 * * *").hours, bits({7}));
}

TEST(CronParse, ListsRangesAndSteps) {
  EXPECT_EQ(fields("0,15,45 * * * *").minutes, bits({0, 15, 45}));
  EXPECT_EQ(fields("10-12 * * * *").minutes, bits({10, 11, 12}));
  EXPECT_EQ(fields("7-7 * * * *").minutes, bits({7}));
  EXPECT_EQ(fields("*/15 * * * *").minutes, bits({0, 15, 30, 45}));
  EXPECT_EQ(fields("*/7 * * * *").minutes, bits({0, 7, 14, 21, 28, 35, 42, 49, 56}));
  EXPECT_EQ(fields("*/60 * * * *").minutes, bits({0}));
  EXPECT_EQ(fields("10-30/10 * * * *").minutes, bits({10, 20, 30}));
  EXPECT_EQ(fields("10-35/10 * * * *").minutes, bits({10, 20, 30}));
  EXPECT_EQ(fields("1-5,10,*/20 * * * *").minutes, bits({0, 1, 2, 3, 4, 5, 10, 20, 40}));
  EXPECT_EQ(fields("* */6 * * *").hours, bits({0, 6, 12, 18}));
  EXPECT_EQ(fields("* 8-18/2 * * *").hours, bits({8, 10, 12, 14, 16, 18}));
  EXPECT_EQ(fields("* * 1-31/10 * *").days, bits({1, 11, 21, 31}));
  EXPECT_EQ(fields("* * */2 * *").days, span(1, 31, 2));
  EXPECT_EQ(fields("* * * */2 *").months, bits({1, 3, 5, 7, 9, 11}));
  EXPECT_EQ(fields("* * * * */2").weekdays, bits({0, 2, 4, 6}));
  EXPECT_EQ(fields("* * * * 1-5").weekdays, bits({1, 2, 3, 4, 5}));
}

TEST(CronParse, MonthAndDayNamesInAnyCase) {
  EXPECT_EQ(fields("0 0 * JAN-MAR *").months, bits({1, 2, 3}));
  EXPECT_EQ(fields("0 0 * jun,Dec *").months, bits({6, 12}));
  EXPECT_EQ(fields("0 0 * feb-NOV/3 *").months, bits({2, 5, 8, 11}));
  EXPECT_EQ(fields("0 0 * * mon-fri").weekdays, bits({1, 2, 3, 4, 5}));
  EXPECT_EQ(fields("0 0 * * MON,wed,Fri").weekdays, bits({1, 3, 5}));
  EXPECT_EQ(fields("0 0 * * SUN").weekdays, bits({0}));
  EXPECT_EQ(fields("0 0 * * sat").weekdays, bits({6}));
  EXPECT_EQ(fields("0 0 * 1,FEB *").months, bits({1, 2}));
}

TEST(CronParse, SevenIsSundayToo) {
  EXPECT_EQ(fields("0 0 * * 7").weekdays, bits({0}));
  EXPECT_EQ(fields("0 0 * * 7"), fields("0 0 * * 0"));
  EXPECT_EQ(fields("0 0 * * 0-7").weekdays, span(0, 6));
  EXPECT_EQ(fields("0 0 * * 5-7").weekdays, bits({5, 6, 0}));
  // A range of weekdays may end on Sunday written as 0 or SUN.
  EXPECT_EQ(fields("0 0 * * FRI-SUN").weekdays, bits({5, 6, 0}));
  EXPECT_EQ(fields("0 0 * * 5-0").weekdays, bits({5, 6, 0}));
  EXPECT_EQ(fields("0 0 * * 1-7/2").weekdays, bits({1, 3, 5, 0}));
  EXPECT_TRUE(cron("0 0 * * 7").matches(1, 4, 0, 0, 0));   // a Sunday
  EXPECT_FALSE(cron("0 0 * * 7").matches(1, 5, 1, 0, 0));  // a Monday
}

TEST(CronParse, Macros) {
  const struct {
    const char* macro;
    const char* fields;
  } cases[] = {{"@hourly", "0 * * * *"},  {"@daily", "0 0 * * *"},   {"@midnight", "0 0 * * *"},
               {"@weekly", "0 0 * * 0"},  {"@monthly", "0 0 1 * *"}, {"@yearly", "0 0 1 1 *"},
               {"@annually", "0 0 1 1 *"}};
  for (const auto& c : cases) {
    EXPECT_EQ(fields(c.macro), fields(c.fields)) << c.macro;
    EXPECT_EQ(cron(c.macro).text(), c.macro);
  }
  EXPECT_EQ(fields("@DAILY"), fields("0 0 * * *"));
  EXPECT_EQ(fields("  @Weekly\t"), fields("0 0 * * 0"));
  EXPECT_EQ(cron("  @Weekly\t").text(), "@Weekly");
}

TEST(CronParse, WhitespaceBetweenAndAroundFields) {
  const Cron c = cron("  0\t2  *   * \t*  \n");
  EXPECT_EQ(c.text(), "0\t2  *   * \t*");
  EXPECT_EQ(c.fields(), fields("0 2 * * *"));
}

TEST(CronParse, DayOfMonthAndDayOfWeekCombineWithOrOnlyWhenBothRestricted) {
  // matches(month, day, weekday, hour, minute). 2026-02-13 is a Friday (5).
  const Cron both = cron("0 0 13 * FRI");
  EXPECT_TRUE(both.matches(2, 13, 5, 0, 0));   // both
  EXPECT_TRUE(both.matches(3, 13, 5, 0, 0));   // the 13th, a Friday
  EXPECT_TRUE(both.matches(1, 13, 2, 0, 0));   // the 13th, a Tuesday: day of month alone
  EXPECT_TRUE(both.matches(1, 16, 5, 0, 0));   // a Friday the 16th: day of week alone
  EXPECT_FALSE(both.matches(1, 14, 3, 0, 0));  // neither
  EXPECT_FALSE(both.matches(1, 13, 5, 1, 0));  // the hour still has to match

  const Cron dom_only = cron("0 0 13 * *");
  EXPECT_TRUE(dom_only.matches(1, 13, 2, 0, 0));
  EXPECT_FALSE(dom_only.matches(1, 16, 5, 0, 0));

  const Cron dow_only = cron("0 0 * * FRI");
  EXPECT_TRUE(dow_only.matches(1, 16, 5, 0, 0));
  EXPECT_FALSE(dow_only.matches(1, 13, 2, 0, 0));

  // Months always combine with AND.
  const Cron in_june = cron("0 0 13 6 FRI");
  EXPECT_TRUE(in_june.matches(6, 2, 5, 0, 0));
  EXPECT_FALSE(in_june.matches(7, 13, 1, 0, 0));

  // Only "*" itself is unrestricted: "*/2" restricts the day of month (Vixie cron would treat
  // it as "*"), so this is "odd days OR Mondays".
  const Cron stepped = cron("0 0 */2 * MON");
  EXPECT_FALSE(stepped.fields().any_day);
  EXPECT_TRUE(stepped.matches(1, 3, 6, 0, 0));   // odd day, Saturday
  EXPECT_TRUE(stepped.matches(1, 4, 1, 0, 0));   // even day, Monday
  EXPECT_FALSE(stepped.matches(1, 4, 2, 0, 0));  // even day, Tuesday
  // And "1-31" restricts too: every day, OR Mondays = every day.
  EXPECT_TRUE(cron("0 0 1-31 * MON").matches(1, 6, 2, 0, 0));
}

TEST(CronParse, ValuesOutOfRangeNameTheField) {
  EXPECT_EQ(error_of("60 * * * *"), "minute field '60': must be 0-59");
  EXPECT_EQ(error_of("0 25 * * *"), "hour field '25': must be 0-23");
  EXPECT_EQ(error_of("0 24 * * *"), "hour field '24': must be 0-23");
  EXPECT_EQ(error_of("0 0 0 * *"), "day-of-month field '0': must be 1-31");
  EXPECT_EQ(error_of("0 0 32 * *"), "day-of-month field '32': must be 1-31");
  EXPECT_EQ(error_of("0 0 * 0 *"), "month field '0': must be 1-12 or JAN-DEC");
  EXPECT_EQ(error_of("0 0 * 13 *"), "month field '13': must be 1-12 or JAN-DEC");
  EXPECT_EQ(error_of("0 0 * * 8"),
            "day-of-week field '8': must be 0-7 (0 and 7 are Sunday) or SUN-SAT");
  // In a list or range, the offending value is quoted as well.
  EXPECT_EQ(error_of("0 1,25 * * *"), "hour field '1,25': '25' must be 0-23");
  EXPECT_EQ(error_of("0 20-24 * * *"), "hour field '20-24': '24' must be 0-23");
  EXPECT_EQ(error_of("99999999999999999999 * * * *"),
            "minute field '99999999999999999999': must be 0-59");
}

TEST(CronParse, ValuesThatAreNotNumbersOrNames) {
  EXPECT_EQ(error_of("x * * * *"), "minute field 'x': 'x' is not a number: use 0-59");
  EXPECT_EQ(error_of("0 -1 * * *"), "hour field '-1': range '-1' needs a value on both sides of '-'");
  EXPECT_EQ(error_of("0 +1 * * *"), "hour field '+1': '+1' is not a number: use 0-23");
  EXPECT_EQ(error_of("0 1.5 * * *"), "hour field '1.5': '1.5' is not a number: use 0-23");
  EXPECT_EQ(error_of("0 0 * * * "), "(parsed)");
  EXPECT_EQ(error_of("MON 0 * * *"), "minute field 'MON': 'MON' is not a number: use 0-59");
  EXPECT_EQ(error_of("0 0 * FOO *"),
            "month field 'FOO': 'FOO' is neither a number nor a month name: use 1-12 or "
            "JAN-DEC");
  EXPECT_EQ(error_of("0 0 * JANUARY *"),
            "month field 'JANUARY': 'JANUARY' is neither a number nor a month name: use 1-12 or "
            "JAN-DEC");
  EXPECT_EQ(error_of("0 0 * * MONDAY"),
            "day-of-week field 'MONDAY': 'MONDAY' is neither a number nor a day name: use 0-7 "
            "(0 and 7 are Sunday) or SUN-SAT");
  EXPECT_EQ(error_of("0 0 * * JAN"),
            "day-of-week field 'JAN': 'JAN' is neither a number nor a day name: use 0-7 (0 and "
            "7 are Sunday) or SUN-SAT");
  EXPECT_EQ(error_of("0 0 MON * *"),
            "day-of-month field 'MON': 'MON' is not a number: use 1-31");
}

TEST(CronParse, QuartzAndJenkinsFormsAreRefused) {
  EXPECT_EQ(error_of("0 0 L * *"),
            "day-of-month field 'L': 'L' is Quartz syntax (L, W, # and ? are not supported): "
            "list the days instead");
  EXPECT_EQ(error_of("0 0 15W * *"),
            "day-of-month field '15W': '15W' is Quartz syntax (L, W, # and ? are not "
            "supported): list the days instead");
  EXPECT_EQ(error_of("0 0 ? * MON"),
            "day-of-month field '?': '?' is Quartz syntax (L, W, # and ? are not supported): "
            "list the days instead");
  EXPECT_EQ(error_of("0 0 * * MON#2"),
            "day-of-week field 'MON#2': 'MON#2' is Quartz syntax (L, W, # and ? are not "
            "supported): list the days instead");
  EXPECT_EQ(error_of("0 0 * * 5L"),
            "day-of-week field '5L': '5L' is Quartz syntax (L, W, # and ? are not supported): "
            "list the days instead");
  EXPECT_EQ(error_of("H * * * *"), "minute field 'H': 'H' is not a number: use 0-59");
}

TEST(CronParse, BadListsRangesAndSteps) {
  EXPECT_EQ(error_of("1,,2 * * * *"),
            "minute field '1,,2': empty item in the list: separate values with single commas");
  EXPECT_EQ(error_of("1, * * * *"),
            "minute field '1,': empty item in the list: separate values with single commas");
  EXPECT_EQ(error_of(",1 * * * *"),
            "minute field ',1': empty item in the list: separate values with single commas");
  EXPECT_EQ(error_of("0 22-2 * * *"),
            "hour field '22-2': range '22-2' is backwards: ranges do not wrap around; write "
            "22-23,0-2");
  EXPECT_EQ(error_of("0 0 * NOV-FEB *"),
            "month field 'NOV-FEB': range 'NOV-FEB' is backwards: ranges do not wrap around; "
            "write 11-12,1-2");
  EXPECT_EQ(error_of("0 0 * * SAT-MON"),
            "day-of-week field 'SAT-MON': range 'SAT-MON' is backwards: ranges do not wrap "
            "around; write 6-7,0-1");
  EXPECT_EQ(error_of("1- * * * *"),
            "minute field '1-': range '1-' needs a value on both sides of '-'");
  EXPECT_EQ(error_of("1-2-3 * * * *"), "minute field '1-2-3': '2-3' is not a number: use 0-59");
  EXPECT_EQ(error_of("*/0 * * * *"), "minute field '*/0': step must be 1-60, not 0");
  EXPECT_EQ(error_of("*/61 * * * *"), "minute field '*/61': step must be 1-60, not 61");
  EXPECT_EQ(error_of("0 */25 * * *"), "hour field '*/25': step must be 1-24, not 25");
  EXPECT_EQ(error_of("0 0 */32 * *"), "day-of-month field '*/32': step must be 1-31, not 32");
  EXPECT_EQ(error_of("0 0 * */13 *"), "month field '*/13': step must be 1-12, not 13");
  EXPECT_EQ(error_of("0 0 * * */8"), "day-of-week field '*/8': step must be 1-7, not 8");
  EXPECT_EQ(error_of("*/x * * * *"), "minute field '*/x': step 'x' is not a number");
  EXPECT_EQ(error_of("*/ * * * *"),
            "minute field '*/': no step after '/' in '*/': write one, as in */15");
  EXPECT_EQ(error_of("*/2/3 * * * *"),
            "minute field '*/2/3': more than one '/' in '*/2/3': write one step, as in */15");
  EXPECT_EQ(error_of("5/15 * * * *"),
            "minute field '5/15': the step in '5/15' needs '*' or a range before it: write "
            "5-59/15");
  EXPECT_EQ(error_of("0 0 * * MON/2"),
            "day-of-week field 'MON/2': the step in 'MON/2' needs '*' or a range before it: "
            "write MON-7/2");
}

TEST(CronParse, WrongNumberOfFields) {
  EXPECT_EQ(error_of("* * * *"),
            "schedule '* * * *' has 4 fields, want 5: minute hour day-of-month month "
            "day-of-week, e.g. \"30 2 * * *\" for 02:30 every day, or a macro such as @daily");
  EXPECT_EQ(error_of("0"),
            "schedule '0' has 1 field, want 5: minute hour day-of-month month day-of-week, "
            "e.g. \"30 2 * * *\" for 02:30 every day, or a macro such as @daily");
  EXPECT_EQ(error_of("0 0 0 * * *"),
            "schedule '0 0 0 * * *' has 6 fields, want 5: minute hour day-of-month month "
            "day-of-week, e.g. \"30 2 * * *\" for 02:30 every day, or a macro such as @daily "
            "(seconds and year fields are not supported)");
  EXPECT_EQ(error_of(""),
            "empty schedule: give five fields, minute hour day-of-month month day-of-week, "
            "e.g. \"30 2 * * *\" for 02:30 every day, or a macro such as @daily");
  EXPECT_EQ(error_of(" \t\n"), error_of(""));
}

TEST(CronParse, BadMacros) {
  EXPECT_EQ(error_of("@reboot"),
            "unknown macro '@reboot': use @hourly, @daily, @midnight, @weekly, @monthly, "
            "@yearly or @annually, or five fields (minute hour day-of-month month "
            "day-of-week)");
  EXPECT_EQ(error_of("@every 5m"),
            "unknown macro '@every': use @hourly, @daily, @midnight, @weekly, @monthly, "
            "@yearly or @annually, or five fields (minute hour day-of-month month "
            "day-of-week)");
  EXPECT_EQ(error_of("@daily 0"),
            "schedule '@daily 0': the macro @daily stands alone: remove what follows it");
}

TEST(CronParse, ExpressionsThatNeverFireAreRefused) {
  const std::string fix =
      "' (February has at most 29 days; April, June, September and November 30): choose days "
      "that exist in those months";
  EXPECT_EQ(error_of("0 0 30 2 *"),
            "schedule '0 0 30 2 *' never fires: no month in the month field '2' has a day in "
            "the day-of-month field '30" + fix);
  EXPECT_EQ(error_of("0 0 30,31 FEB *"),
            "schedule '0 0 30,31 FEB *' never fires: no month in the month field 'FEB' has a "
            "day in the day-of-month field '30,31" + fix);
  EXPECT_EQ(error_of("0 0 31 4,6,9,11 *"),
            "schedule '0 0 31 4,6,9,11 *' never fires: no month in the month field '4,6,9,11' "
            "has a day in the day-of-month field '31" + fix);
  // Any month that has the day makes it fire; so does a restricted day of the week (OR).
  EXPECT_EQ(error_of("0 0 31 2,4,5 *"), "(parsed)");
  EXPECT_EQ(error_of("0 0 29 2 *"), "(parsed)");
  EXPECT_EQ(error_of("0 0 30 2 MON"), "(parsed)");
  EXPECT_EQ(error_of("0 0 30-31 2 */2"), "(parsed)");
}

TEST(CronParse, TextIsKeptAsGivenButTrimmed) {
  EXPECT_EQ(cron("*/5 * * * mon-FRI").text(), "*/5 * * * mon-FRI");
  EXPECT_EQ(cron(" 0 0 * * * ").text(), "0 0 * * *");
}

}  // namespace
}  // namespace haven::schedule
