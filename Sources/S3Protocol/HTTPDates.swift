import Foundation

/// The dates of HTTP and S3, in UTC: RFC 7231's IMF-fixdate (Date, Last-Modified, If-Modified-Since,
/// Retry-After) both ways, and the ISO 8601 form S3's XML writes. The calendar fields of a date come
/// from `gmtime_r` and go back through `timegm`, here and for SigV4's x-amz-date: no locale, no formatter.
public enum HTTPDates {
    private static let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
    private static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    /// "Sun, 06 Nov 1994 08:49:37 GMT".
    public static func format(_ date: Date) -> String {
        let t = fields(date)
        return String(format: "%@, %02d %@ %04d %02d:%02d:%02d GMT", days[Int(t.tm_wday)], t.tm_mday,
                      months[Int(t.tm_mon)], t.tm_year + 1900, t.tm_hour, t.tm_min, t.tm_sec)
    }

    /// "2009-10-12T17:50:30.000Z", as S3's XML writes times.
    public static func iso8601(_ date: Date) -> String {
        let t = fields(date)
        let millis = Int((date.timeIntervalSince1970 - Double(time_t(date.timeIntervalSince1970))) * 1000)
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", t.tm_year + 1900, t.tm_mon + 1, t.tm_mday,
                      t.tm_hour, t.tm_min, t.tm_sec, max(0, min(999, millis)))
    }

    /// An IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"); nil when `text` is not one.
    public static func parse(_ text: String) -> Date? {
        let parts = text.split(separator: " ")
        guard parts.count == 6, let day = Int(parts[1]), let month = months.firstIndex(of: String(parts[2])),
              let year = Int(parts[3]) else { return nil }
        let clock = parts[4].split(separator: ":")
        guard clock.count == 3, let h = Int(clock[0]), let m = Int(clock[1]), let s = Int(clock[2]) else { return nil }
        return date(year: year, month: month + 1, day: day, hour: h, minute: m, second: s)
    }

    /// `date`'s calendar fields in UTC.
    static func fields(_ date: Date) -> tm {
        var time = time_t(date.timeIntervalSince1970)
        var parts = tm()
        gmtime_r(&time, &parts)
        return parts
    }

    /// The date of UTC calendar fields; `month` from 1.
    static func date(year: Int, month: Int, day: Int, hour: Int, minute: Int, second: Int) -> Date {
        var t = tm()
        t.tm_year = Int32(year - 1900)
        t.tm_mon = Int32(month - 1)
        t.tm_mday = Int32(day)
        t.tm_hour = Int32(hour)
        t.tm_min = Int32(minute)
        t.tm_sec = Int32(second)
        return Date(timeIntervalSince1970: Double(timegm(&t)))
    }
}
