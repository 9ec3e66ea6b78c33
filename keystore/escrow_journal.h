#pragma once
// Escrow journal: one small file per data key in a directory on storage other than the keystore's
// (another disk, an NFS export, a replicated volume). Each file holds the key wrapped exactly as in the
// keystore row (row-bound, under the master key), so the journal alone is useless without the master
// key. Entries are written and fsynced before the key is handed out, hence before any object encrypted
// under it is forwarded; `keys shred` removes the entry. See docs/key-custody.md.
#include "keystore/keystore.h"

#include <optional>
#include <string>
#include <vector>

namespace pacsgw::keystore {

struct EscrowRecord {
  std::string id;
  KeyScope scope = KeyScope::Study;
  std::string scopeUid;
  std::string createdAt;
  std::vector<std::uint8_t> kekCheck;  // check value of the master key the wrap was made under
  std::vector<std::uint8_t> wrapped;   // wrapKeyForRow(master key, id, scope, scopeUid, data key)
};

class EscrowJournal {
 public:
  // Throws KeystoreError if `directory` is not an existing directory.
  explicit EscrowJournal(std::string directory);

  const std::string& directory() const { return directory_; }

  // Writes (or rewrites, when the wrap changed) the entry of record.scope/scopeUid, durably. Throws
  // KeystoreError if the journal already holds a different key id for that scope: the study's key forked.
  // Returns true if it wrote anything.
  bool put(const EscrowRecord& record);
  std::optional<EscrowRecord> find(KeyScope scope, const std::string& scopeUid) const;
  // Overwrites and removes the entry; returns false if there was none.
  bool remove(KeyScope scope, const std::string& scopeUid);
  // Every entry (malformed files are reported in `problems`, never silently skipped).
  std::vector<EscrowRecord> all(std::vector<std::string>* problems = nullptr) const;

 private:
  std::string entryPath(KeyScope scope, const std::string& scopeUid) const;
  std::string directory_;
};

}  // namespace pacsgw::keystore
