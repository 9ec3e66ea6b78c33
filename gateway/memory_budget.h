#pragma once
// Accounting of the data sets the gateway holds in memory: a total for all associations together and a
// limit per association. A data set that would exceed either is refused (DIMSE 0xA700) instead of
// growing the process until the kernel kills it.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>

namespace pacsgw::gateway {

// Process-wide: every association's data sets together.
class MemoryBudget {
 public:
  explicit MemoryBudget(std::uint64_t totalBytes) : total_(totalBytes) {}
  bool tryReserve(std::uint64_t bytes);
  // As tryReserve, but waits up to `wait` for other data sets to be released first.
  bool reserveWithin(std::uint64_t bytes, std::chrono::milliseconds wait);
  void release(std::uint64_t bytes);
  std::uint64_t inUse() const;
  std::uint64_t peak() const;
  std::uint64_t total() const { return total_; }

 private:
  const std::uint64_t total_;
  mutable std::mutex mutex_;
  std::condition_variable released_;
  std::uint64_t inUse_ = 0;
  std::uint64_t peak_ = 0;
};

// Bytes of the total held by a data set that another thread now owns (a retrieve sub-operation waiting
// for delivery): given back where that thread drops it, however long the association it came on lives.
class BudgetHold {
 public:
  BudgetHold() = default;
  BudgetHold(MemoryBudget& budget, std::uint64_t bytes) : budget_(&budget), bytes_(bytes) {}
  ~BudgetHold() { reset(); }
  BudgetHold(BudgetHold&& other) noexcept : budget_(other.budget_), bytes_(other.bytes_) { other.bytes_ = 0; }
  BudgetHold& operator=(BudgetHold&& other) noexcept;
  BudgetHold(const BudgetHold&) = delete;
  BudgetHold& operator=(const BudgetHold&) = delete;

  void reset();
  std::uint64_t bytes() const { return bytes_; }

 private:
  MemoryBudget* budget_ = nullptr;
  std::uint64_t bytes_ = 0;
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
  // When the total is spent, wait up to `wait` for it instead of refusing at once: for the PACS's
  // retrieve sub-operations, whose earlier instances free the total as they reach the destination.
  void waitForTotalUpTo(std::chrono::milliseconds wait) { waitForTotal_ = wait; }
  void release(std::uint64_t bytes);
  // The bytes leave this association's share but stay taken from the total, held by the result.
  BudgetHold handOver(std::uint64_t bytes);
  std::uint64_t held() const { return held_; }
  std::uint64_t limit() const { return limit_; }
  const MemoryBudget& budget() const { return budget_; }

 private:
  MemoryBudget& budget_;
  const std::uint64_t limit_;
  std::uint64_t held_ = 0;
  std::chrono::milliseconds waitForTotal_{0};
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
  // For a data set handed to another thread: its bytes keep counting against the total until the
  // returned hold is dropped, and no longer against this association.
  BudgetHold handOver();
  std::uint64_t bytes() const { return bytes_; }

 private:
  AssociationMemory* owner_ = nullptr;
  std::uint64_t bytes_ = 0;
};

}  // namespace pacsgw::gateway
