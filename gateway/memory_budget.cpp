#include "gateway/memory_budget.h"

#include <algorithm>

namespace pacsgw::gateway {

bool MemoryBudget::tryReserve(std::uint64_t bytes) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (bytes > total_ - inUse_) return false;
  inUse_ += bytes;
  peak_ = std::max(peak_, inUse_);
  return true;
}

bool MemoryBudget::reserveWithin(std::uint64_t bytes, std::chrono::milliseconds wait) {
  std::unique_lock<std::mutex> lock(mutex_);
  if (bytes > total_) return false;
  if (!released_.wait_for(lock, wait, [&] { return bytes <= total_ - inUse_; })) return false;
  inUse_ += bytes;
  peak_ = std::max(peak_, inUse_);
  return true;
}

void MemoryBudget::release(std::uint64_t bytes) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    inUse_ -= std::min(bytes, inUse_);
  }
  released_.notify_all();
}

std::uint64_t MemoryBudget::inUse() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return inUse_;
}

std::uint64_t MemoryBudget::peak() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return peak_;
}

AssociationMemory::~AssociationMemory() { budget_.release(held_); }

AssociationMemory::Refusal AssociationMemory::reserve(std::uint64_t bytes) {
  if (bytes > limit_ - held_) return Refusal::Association;
  const bool reserved = waitForTotal_.count() > 0 ? budget_.reserveWithin(bytes, waitForTotal_) : budget_.tryReserve(bytes);
  if (!reserved) return Refusal::Total;
  held_ += bytes;
  return Refusal::None;
}

void AssociationMemory::release(std::uint64_t bytes) {
  bytes = std::min(bytes, held_);
  held_ -= bytes;
  budget_.release(bytes);
}

BudgetHold AssociationMemory::handOver(std::uint64_t bytes) {
  bytes = std::min(bytes, held_);
  held_ -= bytes;
  return BudgetHold(budget_, bytes);
}

BudgetHold& BudgetHold::operator=(BudgetHold&& other) noexcept {
  if (this != &other) {
    reset();
    budget_ = other.budget_;
    bytes_ = other.bytes_;
    other.bytes_ = 0;
  }
  return *this;
}

void BudgetHold::reset() {
  if (budget_ != nullptr && bytes_ > 0) budget_->release(bytes_);
  bytes_ = 0;
}

MemoryReservation::MemoryReservation(MemoryReservation&& other) noexcept
    : owner_(other.owner_), bytes_(other.bytes_) {
  other.bytes_ = 0;
}

MemoryReservation& MemoryReservation::operator=(MemoryReservation&& other) noexcept {
  if (this != &other) {
    reset();
    owner_ = other.owner_;
    bytes_ = other.bytes_;
    other.bytes_ = 0;
  }
  return *this;
}

AssociationMemory::Refusal MemoryReservation::grow(std::uint64_t bytes) {
  if (owner_ == nullptr) return AssociationMemory::Refusal::Association;
  const auto refusal = owner_->reserve(bytes);
  if (refusal == AssociationMemory::Refusal::None) bytes_ += bytes;
  return refusal;
}

BudgetHold MemoryReservation::handOver() {
  if (owner_ == nullptr || bytes_ == 0) return BudgetHold();
  BudgetHold hold = owner_->handOver(bytes_);
  bytes_ = 0;
  return hold;
}

void MemoryReservation::reset() {
  if (owner_ != nullptr && bytes_ > 0) owner_->release(bytes_);
  bytes_ = 0;
}

}  // namespace pacsgw::gateway
