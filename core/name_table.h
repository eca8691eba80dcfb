// One helper for every enum <-> name table (length scaling, position encoding, normalizer rows,
// normalizer parameter choices, model presets): an explicit list of rows, each with a `name` and
// a `kind`, looked up both ways. Unknown names are UsageErrors in the house style
// ("unknown WHAT 'x'; did you mean 'y'? (known: a, b, c)"); a kind missing from its table is a
// programming error (LB_CHECK).
//
// Use: a row type with `const char* name` and `kind` members (NameRow<E> for a bare enum, or a
// richer registry row), a NameTable<Row> built once from a list of rows.
//   static const NameTable<NameRow<PosEncoding>> kTable("position encoding",
//       {{"nope", PosEncoding::kNope}, {"rope", PosEncoding::kRope}});
//   kTable.name_of(PosEncoding::kRope) == "rope"; kTable.from_name("rop") throws "did you mean".
#pragma once
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "core/check.h"

namespace lb {

template <typename E>
struct NameRow {
  const char* name;
  E kind;
};

template <typename Row>
class NameTable {
 public:
  using Kind = decltype(Row::kind);

  // what: the noun in error messages ("position encoding"). Names and kinds must be unique.
  NameTable(const char* what, std::vector<Row> rows) : what_(what), rows_(std::move(rows)) {
    for (const Row& r : rows_) names_.push_back(r.name);
    for (size_t a = 0; a < rows_.size(); ++a) {
      for (size_t b = 0; b < a; ++b) {
        LB_CHECK(rows_[a].kind != rows_[b].kind && names_[a] != names_[b],
                 what_ << " table: rows " << b << " and " << a << " repeat a name or a kind");
      }
    }
  }

  const std::vector<Row>& rows() const { return rows_; }
  const std::vector<std::string>& names() const { return names_; }  // in row order

  // The row of `kind`; LB_CHECK when the table lacks it.
  const Row& row(Kind kind) const {
    for (const Row& r : rows_) {
      if (r.kind == kind) return r;
    }
    LB_CHECK(false, what_ << " " << static_cast<long long>(kind) << " missing from its table");
    return rows_.front();
  }
  const char* name_of(Kind kind) const { return row(kind).name; }

  // The row named `name`, or nullptr.
  const Row* find(const std::string& name) const {
    for (const Row& r : rows_) {
      if (name == r.name) return &r;
    }
    return nullptr;
  }
  // The row named `name`; UsageError "unknown WHAT 'name'; did you mean ...? (known: ...)".
  const Row& row_named(const std::string& name) const {
    if (const Row* r = find(name)) return *r;
    throw UsageError(unknown_name_message(what_, name, names_));
  }
  Kind from_name(const std::string& name) const { return row_named(name).kind; }

  // "a, b, c": the accepted names, for messages that list them.
  std::string joined_names() const {
    std::string out;
    for (const auto& n : names_) out += (out.empty() ? "" : ", ") + n;
    return out;
  }

 private:
  std::string what_;
  std::vector<Row> rows_;
  std::vector<std::string> names_;
};

}  // namespace lb
