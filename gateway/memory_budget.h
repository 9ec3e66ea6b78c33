#pragma once
// Accounting of the data sets the gateway holds in memory: a total for all associations together and a
// limit per association. A data set that would exceed either is refused (DIMSE 0xA700) instead of
// growing the process until the kernel kills it.
#include <cstdint>
#include <mutex>

namespace pacsgw::gateway {

// Process-wide: every association's data sets together.
class MemoryBudget {
 public:
  explicit MemoryBudget(std::uint64_t totalBytes) : total_(totalBytes) {}
  bool tryReserve(std::uint64_t bytes);
  void release(std::uint64_t bytes);
  std::uint64_t inUse() const;
  std::uint64_t peak() const;
  std::uint64_t total() const { return total_; }

 private:
  const std::uint64_t total_;
  mutable std::mutex mutex_;
  std::uint64_t inUse_ = 0;
  std::uint64_t peak_ = 0;
};

// One association's share; used from that association's thread only.
class AssociationMemory {
 public:
  AssociationMemory(MemoryBudget& budget, std::uint64_t limitBytes) : budget_(budget), limit_(limitBytes) {}
  ~AssociationMemory();
  AssociationMemory(const AssociationMemory&) = delete;
  AssociationMemory& operator=(const AssociationMemory&) = delete;

  enum class Refusal { None, Association, Total };
  // Takes `bytes` from this association's share and from the total, or neither.
  Refusal reserve(std::uint64_t bytes);
  void release(std::uint64_t bytes);
  std::uint64_t held() const { return held_; }
  std::uint64_t limit() const { return limit_; }
  const MemoryBudget& budget() const { return budget_; }

 private:
  MemoryBudget& budget_;
  const std::uint64_t limit_;
  std::uint64_t held_ = 0;
};

// Bytes held for one data set, given back when it is destroyed.
class MemoryReservation {
 public:
  MemoryReservation() = default;
  explicit MemoryReservation(AssociationMemory& owner) : owner_(&owner) {}
  ~MemoryReservation() { reset(); }
  MemoryReservation(MemoryReservation&& other) noexcept;
  MemoryReservation& operator=(MemoryReservation&& other) noexcept;
  MemoryReservation(const MemoryReservation&) = delete;
  MemoryReservation& operator=(const MemoryReservation&) = delete;

  AssociationMemory::Refusal grow(std::uint64_t bytes);
  void reset();
  std::uint64_t bytes() const { return bytes_; }

 private:
  AssociationMemory* owner_ = nullptr;
  std::uint64_t bytes_ = 0;
};

}  // namespace pacsgw::gateway
