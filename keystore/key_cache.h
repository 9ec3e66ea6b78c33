#pragma once
// Small LRU cache of unwrapped data keys, looked up by id or by (scope, scope UID). Not thread-safe:
// the keystore calls it under its own mutex. getOrCreate runs once per DICOM instance, so a hit must
// avoid SQLite and the AES unwrap entirely.
#include "keystore/keystore.h"

#include <cstddef>
#include <list>
#include <string>
#include <unordered_map>

namespace pacsgw::keystore::detail {

class KeyCache {
 public:
  explicit KeyCache(std::size_t capacity) : capacity_(capacity == 0 ? 1 : capacity) {}

  const DataKey* findById(const std::string& id) { return touch(byId_, id); }
  const DataKey* findByScope(KeyScope scope, const std::string& scopeUid) {
    return touch(byScope_, scopeKey(scope, scopeUid));
  }

  void put(const DataKey& key) {
    if (findById(key.id) != nullptr) return;  // already cached (and now most recent)
    if (entries_.size() >= capacity_) {
      const DataKey& oldest = entries_.back();
      byId_.erase(oldest.id);
      byScope_.erase(scopeKey(oldest.scope, oldest.scopeUid));
      entries_.pop_back();  // the SecretBytes wipes itself
    }
    entries_.push_front(key);
    byId_[key.id] = entries_.begin();
    byScope_[scopeKey(key.scope, key.scopeUid)] = entries_.begin();
  }

  std::size_t size() const { return entries_.size(); }

  void clear() {  // the SecretBytes wipe themselves
    byId_.clear();
    byScope_.clear();
    entries_.clear();
  }

 private:
  using List = std::list<DataKey>;
  using Index = std::unordered_map<std::string, List::iterator>;

  static std::string scopeKey(KeyScope scope, const std::string& scopeUid) {
    std::string key;
    key.reserve(scopeUid.size() + 1);
    key.push_back(static_cast<char>('0' + static_cast<int>(scope)));
    key += scopeUid;
    return key;
  }

  const DataKey* touch(Index& index, const std::string& key) {
    const auto found = index.find(key);
    if (found == index.end()) return nullptr;
    entries_.splice(entries_.begin(), entries_, found->second);  // iterators stay valid
    return &*found->second;
  }

  std::size_t capacity_;
  List entries_;  // most recently used first
  Index byId_;
  Index byScope_;
};

}  // namespace pacsgw::keystore::detail
