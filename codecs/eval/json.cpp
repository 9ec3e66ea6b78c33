#include "codecs/eval/json.h"

#include <cmath>
#include <cstdio>
#include <stdexcept>

namespace pacsgw::eval {

Json& Json::operator[](const std::string& key) {
  if (type_ == Type::Null) type_ = Type::Object;
  if (type_ != Type::Object) throw std::logic_error("Json: not an object");
  for (auto& m : members_)
    if (m.first == key) return m.second;
  members_.emplace_back(key, Json());
  return members_.back().second;
}

const Json* Json::find(const std::string& key) const {
  for (const auto& m : members_)
    if (m.first == key) return &m.second;
  return nullptr;
}

void Json::push(Json v) {
  if (type_ == Type::Null) type_ = Type::Array;
  if (type_ != Type::Array) throw std::logic_error("Json: not an array");
  items_.push_back(std::move(v));
}

namespace {

void writeString(std::string& out, const std::string& s) {
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  out += '"';
}

void newline(std::string& out, int indent, int depth) {
  if (indent <= 0) return;
  out += '\n';
  out.append(static_cast<std::size_t>(indent * depth), ' ');
}

}  // namespace

void Json::write(std::string& out, int indent, int depth) const {
  switch (type_) {
    case Type::Null: out += "null"; break;
    case Type::Bool: out += bool_ ? "true" : "false"; break;
    case Type::Number: {
      if (!std::isfinite(number_)) {
        out += "null";
        break;
      }
      char buf[32];
      if (number_ == std::floor(number_) && std::fabs(number_) < 1e15)
        std::snprintf(buf, sizeof buf, "%.0f", number_);
      else
        std::snprintf(buf, sizeof buf, "%.10g", number_);
      out += buf;
      break;
    }
    case Type::String: writeString(out, string_); break;
    case Type::Array: {
      out += '[';
      // Arrays of plain numbers stay on one line (histograms, p-value lists).
      bool flat = true;
      for (const auto& v : items_)
        flat = flat && (v.type_ == Type::Number || v.type_ == Type::Null || v.type_ == Type::Bool);
      for (std::size_t i = 0; i < items_.size(); ++i) {
        if (i) out += flat ? ", " : ",";
        if (!flat) newline(out, indent, depth + 1);
        items_[i].write(out, indent, depth + 1);
      }
      if (!flat && !items_.empty()) newline(out, indent, depth);
      out += ']';
      break;
    }
    case Type::Object: {
      out += '{';
      for (std::size_t i = 0; i < members_.size(); ++i) {
        if (i) out += ',';
        newline(out, indent, depth + 1);
        writeString(out, members_[i].first);
        out += indent > 0 ? ": " : ":";
        members_[i].second.write(out, indent, depth + 1);
      }
      if (!members_.empty()) newline(out, indent, depth);
      out += '}';
      break;
    }
  }
}

std::string Json::dump(int indent) const {
  std::string out;
  write(out, indent, 0);
  return out;
}

}  // namespace pacsgw::eval
