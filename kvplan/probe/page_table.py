"""The CSR page table of source note 001, in FlashInfer's names, dtypes and layout.

    kv_indptr        int32 [B + 1]   request i owns kv_indices[kv_indptr[i]:kv_indptr[i + 1]]
    kv_indices       int32 [kv_indptr[-1]]   page ids, in the order of the request's tokens
    kv_last_page_len int32 [B]       tokens in each request's last page, 1..page_size
    cache            [num_pages, 2, page_size, num_kv_heads, head_dim]   (K at [:, 0], V at [:, 1])

and the identity seq_len = page_size * (num_pages - 1) + last_page_len. Pages are handed out in a
shuffled order, so no kernel can accidentally rely on a request's pages being contiguous.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from kvplan.errors import InputError


@dataclass(frozen=True)
class PageTable:
    kv_indptr: torch.Tensor  # int32 [B + 1]
    kv_indices: torch.Tensor  # int32 [total pages]
    kv_last_page_len: torch.Tensor  # int32 [B]
    page_size: int

    @property
    def batch(self) -> int:
        return self.kv_last_page_len.numel()

    def seq_lens(self) -> torch.Tensor:  # int32 [B]
        pages = self.kv_indptr[1:] - self.kv_indptr[:-1]
        return self.page_size * (pages - 1) + self.kv_last_page_len

    def to(self, device) -> PageTable:
        return PageTable(self.kv_indptr.to(device), self.kv_indices.to(device), self.kv_last_page_len.to(device),
                         self.page_size)


def build_page_table(seq_lens: list[int], page_size: int, num_pages: int, seed: int = 0) -> PageTable:
    """Map requests of `seq_lens` tokens onto distinct pages drawn in shuffled order from a pool."""
    if not seq_lens or min(seq_lens) < 1:
        raise InputError("every request needs at least one token")
    pages = [-(-n // page_size) for n in seq_lens]
    needed = sum(pages)
    if needed > num_pages:
        raise InputError(f"{len(seq_lens)} requests need {needed:,} pages of {page_size} tokens but the pool "
                         f"holds {num_pages:,}; lower --batch or --ctx")
    order = torch.randperm(num_pages, generator=torch.Generator().manual_seed(seed))[:needed]
    indptr = torch.zeros(len(seq_lens) + 1, dtype=torch.int32)
    indptr[1:] = torch.cumsum(torch.tensor(pages, dtype=torch.int32), 0)
    last = torch.tensor([n - page_size * (p - 1) for n, p in zip(seq_lens, pages)], dtype=torch.int32)
    return PageTable(indptr, order.to(torch.int32), last, page_size)


def check_page_table(table: PageTable, num_pages: int, seq_lens: list[int]) -> list[str]:
    """Every invariant of the contract; returns the ones that fail (empty: all hold)."""
    problems = []
    indptr, indices, last = table.kv_indptr, table.kv_indices, table.kv_last_page_len
    for name, t in (("kv_indptr", indptr), ("kv_indices", indices), ("kv_last_page_len", last)):
        if t.dtype != torch.int32:
            problems.append(f"{name} is {t.dtype}, not int32")
    if indptr.numel() != len(seq_lens) + 1 or int(indptr[0]) != 0:
        problems.append("kv_indptr must have B + 1 entries starting at 0")
    if bool((indptr[1:] < indptr[:-1]).any()):
        problems.append("kv_indptr must not decrease")
    if indices.numel() != int(indptr[-1]):
        problems.append("kv_indices must hold kv_indptr[-1] entries")
    if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= num_pages):
        problems.append("a page id is outside the pool")
    if indices.unique().numel() != indices.numel():
        problems.append("a page is shared by two requests (or twice by one)")
    if bool(((last < 1) | (last > table.page_size)).any()):
        problems.append("kv_last_page_len must lie in 1..page_size")
    if table.seq_lens().tolist() != list(seq_lens):
        problems.append("page_size * (pages - 1) + last_page_len != seq_len")
    return problems
