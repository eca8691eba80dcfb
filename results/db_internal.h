// Internal to the results library (db.cpp, claims.cpp): the write transaction and the error
// wrapper every ResultsDb method runs its statements under. Not part of the public API (db.h).
#pragma once
#include <SQLiteCpp/SQLiteCpp.h>
#include <sqlite3.h>

#include <stdexcept>
#include <string>

namespace lb::results_internal {

// A write transaction (BEGIN IMMEDIATE), or nothing when one is already open on the connection
// (ResultsDb::transaction): the writes then commit or roll back with the enclosing one.
class WriteTxn {
 public:
  explicit WriteTxn(SQLite::Database& db)
      : db_(db), own_(sqlite3_get_autocommit(db.getHandle()) != 0) {
    if (own_) db_.exec("BEGIN IMMEDIATE");
  }
  WriteTxn(const WriteTxn&) = delete;
  WriteTxn& operator=(const WriteTxn&) = delete;
  void commit() {
    if (own_ && !done_) db_.exec("COMMIT");
    done_ = true;
  }
  ~WriteTxn() {
    if (own_ && !done_) {
      try {
        db_.exec("ROLLBACK");
      } catch (...) {
      }
    }
  }

 private:
  SQLite::Database& db_;
  bool own_, done_ = false;
};

// Runs fn; SQLite errors become one clear line naming the database.
template <typename Fn>
auto guarded(const std::string& path, int timeout_ms, Fn&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const SQLite::Exception& e) {
    const int code = e.getErrorCode() & 0xff;
    if (code == SQLITE_BUSY || code == SQLITE_LOCKED) {
      throw std::runtime_error(
          "results database '" + path + "' is locked by another process (waited " +
          std::to_string(timeout_ms / 1000.0).substr(0, 4) + " s): " + e.what());
    }
    throw std::runtime_error("results database '" + path + "': " + e.what());
  }
}

}  // namespace lb::results_internal
