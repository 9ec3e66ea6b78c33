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

void MemoryBudget::release(std::uint64_t bytes) {
  std::lock_guard<std::mutex> lock(mutex_);
  inUse_ -= std::min(bytes, inUse_);
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
  if (!budget_.tryReserve(bytes)) return Refusal::Total;
  held_ += bytes;
  return Refusal::None;
}

void AssociationMemory::release(std::uint64_t bytes) {
  bytes = std::min(bytes, held_);
  held_ -= bytes;
  budget_.release(bytes);
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

void MemoryReservation::reset() {
  if (owner_ != nullptr && bytes_ > 0) owner_->release(bytes_);
  bytes_ = 0;
}

}  // namespace pacsgw::gateway
