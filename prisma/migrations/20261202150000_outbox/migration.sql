-- AlterTable
ALTER TABLE "Prediction" ADD COLUMN "eventPending" BOOLEAN NOT NULL DEFAULT false;

-- CreateIndex (partial: Prisma's schema language cannot say WHERE, so this one is hand-written)
CREATE INDEX "Prediction_eventPending_createdAt_idx" ON "Prediction"("createdAt") WHERE "eventPending";
