#pragma once
// A minimal ordered JSON value for the evaluation report (objects keep insertion order, so the output
// reads in the order the measurements were taken). Non-finite numbers are written as null.
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace pacsgw::eval {

class Json {
 public:
  enum class Type { Null, Bool, Number, String, Array, Object };

  Json() = default;
  Json(std::nullptr_t) {}
  Json(bool b) : type_(Type::Bool), bool_(b) {}
  Json(double d) : type_(Type::Number), number_(d) {}
  Json(int i) : Json(static_cast<double>(i)) {}
  Json(long i) : Json(static_cast<double>(i)) {}
  Json(long long i) : Json(static_cast<double>(i)) {}
  Json(unsigned i) : Json(static_cast<double>(i)) {}
  Json(unsigned long i) : Json(static_cast<double>(i)) {}
  Json(unsigned long long i) : Json(static_cast<double>(i)) {}
  Json(const char* s) : type_(Type::String), string_(s) {}
  Json(std::string s) : type_(Type::String), string_(std::move(s)) {}

  static Json array() {
    Json j;
    j.type_ = Type::Array;
    return j;
  }
  static Json object() {
    Json j;
    j.type_ = Type::Object;
    return j;
  }

  Type type() const { return type_; }
  bool isNull() const { return type_ == Type::Null; }
  bool isNumber() const { return type_ == Type::Number; }
  bool isBool() const { return type_ == Type::Bool; }
  bool isObject() const { return type_ == Type::Object; }
  bool isArray() const { return type_ == Type::Array; }
  double number() const { return number_; }
  bool boolean() const { return bool_; }
  const std::string& string() const { return string_; }

  // Object access: inserts a null member if absent (keeps the first insertion position).
  Json& operator[](const std::string& key);
  const Json* find(const std::string& key) const;
  const std::vector<std::pair<std::string, Json>>& members() const { return members_; }

  void push(Json v);
  const std::vector<Json>& items() const { return items_; }

  std::string dump(int indent = 2) const;

 private:
  void write(std::string& out, int indent, int depth) const;

  Type type_ = Type::Null;
  bool bool_ = false;
  double number_ = 0;
  std::string string_;
  std::vector<Json> items_;
  std::vector<std::pair<std::string, Json>> members_;
};

}  // namespace pacsgw::eval
